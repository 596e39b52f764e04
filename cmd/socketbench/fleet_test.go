package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestFleetLedger(t *testing.T) {
	l := newFleetLedger()
	for _, s := range []int{0, 2, 1, 2, 3, 3, 5} {
		l.receive(s)
	}
	if l.dup != 2 || l.outOfOrder != 1 || l.high != 5 || l.arrivals != 7 {
		t.Errorf("dup %d ooo %d high %d arrivals %d; want 2 1 5 7", l.dup, l.outOfOrder, l.high, l.arrivals)
	}
	if !l.has(1) || l.has(4) {
		t.Error("has")
	}
	if len(l.dupSeqs) != 2 || l.dupSeqs[0] != 2 || l.dupSeqs[1] != 3 {
		t.Errorf("duplicate seqs %v, want [2 3]", l.dupSeqs)
	}
}

func TestTallyFleetClient(t *testing.T) {
	const rooms = 3
	// seq 0..11; room of seq = seq % 3; seq 7 not sent, seq 11 still pending.
	sent := make([]int8, 12)
	for i := range sent {
		sent[i] = pubOK
	}
	sent[7], sent[11] = pubFailed, pubPending
	l := newFleetLedger()
	// A client of room 1, accountable from seq 3: expects 4, 10 (7 was not
	// sent). It also got 1 (before its join), 7 (not sent, arrived anyway),
	// 4 twice, and 10 before 4's second copy.
	for _, s := range []int{1, 10, 4, 4, 7} {
		l.receive(s)
	}
	var lost []int
	got := tallyFleetClient(l, 3, 1, rooms, sent, func(s int) { lost = append(lost, s) })
	want := fleetTally{Expected: 2, Received: 2, Lost: 0, Duplicated: 1, OutOfOrder: 2, Unexpected: 2}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// Room 2 from seq 0: expects 2, 5, 8; got only 5 (and 4, another room's).
	l = newFleetLedger()
	l.receive(5)
	l.receive(4)
	lost = nil
	got = tallyFleetClient(l, 0, 2, rooms, sent, func(s int) { lost = append(lost, s) })
	want = fleetTally{Expected: 3, Received: 1, Lost: 2, OutOfOrder: 1, Unexpected: 1}
	if got != want || len(lost) != 2 || lost[0] != 2 || lost[1] != 8 {
		t.Errorf("got %+v lost %v, want %+v lost [2 8]", got, lost, want)
	}
	// Never joined: nothing expected, whatever arrived is unexpected.
	got = tallyFleetClient(l, -1, 2, rooms, sent, nil)
	if got != (fleetTally{OutOfOrder: 1, Unexpected: 2}) {
		t.Errorf("never joined: %+v", got)
	}
	// The first accountable seq past the end.
	if got := tallyFleetClient(newFleetLedger(), 12, 0, rooms, sent, nil); got != (fleetTally{}) {
		t.Errorf("joined after the last message: %+v", got)
	}
	var sum fleetTally
	sum.add(fleetTally{Expected: 1, Lost: 1})
	sum.add(fleetTally{Expected: 2, Received: 2, Duplicated: 3})
	if sum != (fleetTally{Expected: 3, Received: 2, Lost: 1, Duplicated: 3}) {
		t.Errorf("sum %+v", sum)
	}
}

func TestFleetLastExpected(t *testing.T) {
	sent := []int8{pubOK, pubOK, pubOK, pubOK, pubFailed, pubOK, pubPending}
	for _, c := range []struct{ first, room, want int }{
		{0, 0, 3}, {0, 1, 1}, {2, 1, -1}, {0, 2, 5}, {-1, 0, -1}, {4, 0, -1},
	} {
		if got := fleetLastExpected(c.first, c.room, 3, sent); got != c.want {
			t.Errorf("first %d room %d: %d, want %d", c.first, c.room, got, c.want)
		}
	}
}

func TestFleetWire(t *testing.T) {
	if a := fleetConnectAuth("", "x"); a != nil {
		t.Errorf("first connect: auth %s", a)
	}
	if a := string(fleetConnectAuth("P1", "")); a != `{"pid":"P1"}` {
		t.Errorf("no offset: %s", a)
	}
	if a := string(fleetConnectAuth("P1", "1795746601833-0")); a != `{"pid":"P1","offset":"1795746601833-0"}` {
		t.Errorf("with offset: %s", a)
	}
	arr, seq, room, err := fleetEvent([]byte(`2["msg",{"room":"r3","seq":17},"1795746601833-0"]`))
	if err != nil || seq != 17 || room != "r3" {
		t.Fatalf("msg: %d %q %v", seq, room, err)
	}
	if off, ok := fleetOffset(arr); !ok || off != "1795746601833-0" {
		t.Errorf("offset %q %v", off, ok)
	}
	arr, seq, _, err = fleetEvent([]byte(`2["msg",{"room":"r3","seq":0}]`))
	if err != nil || seq != 0 {
		t.Fatalf("msg without offset: %d %v", seq, err)
	}
	if off, ok := fleetOffset(arr); ok {
		t.Errorf("no offset expected, got %q", off)
	}
	arr, seq, _, err = fleetEvent([]byte(`2["server:maintenance",{"message":"m"}]`))
	if err != nil || seq != -1 || len(arr) != 2 {
		t.Errorf("other event: %d %v", seq, err)
	}
	if _, _, _, err := fleetEvent([]byte(`21["msg",{}]`)); err == nil {
		t.Error("an event with an ack id is not one of ours")
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{{"2-0", "1-5", true}, {"1-5", "1-5", false}, {"1-4", "1-5", false}, {"1-6", "1-5", true}, {"10", "9", true}, {"x", "y", true}, {"x", "x", false}} {
		if got := fleetOffsetAfter(c.a, c.b); got != c.want {
			t.Errorf("%q after %q: %v", c.a, c.b, got)
		}
	}
	if sid, pid := fleetReply([]byte(`0{"sid":"S","pid":"P"}`)); sid != "S" || pid != "P" {
		t.Errorf("reply %q %q", sid, pid)
	}
	if sid, pid := fleetReply([]byte(`0{"sid":"S"}`)); sid != "S" || pid != "" {
		t.Errorf("reply without pid %q %q", sid, pid)
	}
}

// fakeFleet is a session for fleetClient.run against one URL.
type fakeFleet struct{ url string }

func (f fakeFleet) pickURL(int, int) string { return f.url }
func (f fakeFleet) joinedAt() int           { return 0 }

// TestFleetClientRecovery runs the client against a fake server that
// plays the recovery protocol: session 1 is fresh (join), session 2 is
// recovered with a missed packet before the CONNECT reply, session 3 is
// not recovered (a new pid: the client must join again).
func TestFleetClientRecovery(t *testing.T) {
	up := websocket.Upgrader{}
	var mu sync.Mutex
	var auths []string
	conns := 0
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		mu.Lock()
		conns++
		n := conns
		mu.Unlock()
		send := func(s string) { _ = ws.WriteMessage(websocket.TextMessage, []byte(s)) }
		read := func() string {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return ""
			}
			return string(b)
		}
		expectJoin := func() {
			p := read()
			id, ok := strings.CutSuffix(strings.TrimPrefix(p, "42"), `["join","r0"]`)
			if !strings.HasPrefix(p, "42") || !ok || id == "" {
				t.Errorf("session %d: %q, want the join with an ack id", n, p)
			}
			send(`43` + id + `[{"ok":true}]`)
		}
		send(`0{"sid":"eio","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`)
		connect := read()
		mu.Lock()
		auths = append(auths, connect)
		mu.Unlock()
		switch n {
		case 1:
			send(`40{"sid":"S1","pid":"P1"}`)
			expectJoin()
			send(`42["msg",{"room":"r0","seq":0},"o-0"]`)
			send(`42["msg",{"room":"r0","seq":1},"o-1"]`)
		case 2:
			send(`42["msg",{"room":"r0","seq":1},"o-1"]`) // stale: at the client's offset (a duplicate)
			send(`42["msg",{"room":"r0","seq":2},"o-2"]`) // missed, before the reply
			send(`40{"sid":"S1","pid":"P1"}`)
			send(`42["msg",{"room":"r0","seq":2},"o-2"]`) // a duplicate
			send(`42["server:maintenance",{"message":"m"}]`)
		case 3:
			send(`40{"sid":"S2","pid":"P2"}`)
			expectJoin()
			send(`42["msg",{"room":"r0","seq":4},"o-4"]`)
			send(`42["msg",{"room":"r0","seq":3},"o-3"]`)
			close(done)
			read() // until the client goes
		}
		time.Sleep(50 * time.Millisecond)
	}))
	defer srv.Close()
	fc := &fleetClient{id: 0, room: 0, led: newFleetLedger(), first: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopped := make(chan struct{})
	go func() { defer close(stopped); fc.run(ctx, fakeFleet{srv.URL}, make(chan struct{}, 1)) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the client did not get to session 3")
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-stopped
	mu.Lock()
	defer mu.Unlock()
	want := []string{`40`, `40{"pid":"P1","offset":"o-1"}`, `40{"pid":"P1","offset":"o-2"}`}
	if len(auths) < 3 || strings.Join(auths[:3], " ") != strings.Join(want, " ") {
		t.Errorf("CONNECT packets %q, want %q", auths, want)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.sessions != 3 || fc.reconnects != 2 || fc.recovered != 1 || fc.joins != 2 || fc.sidChanged != 0 || fc.first != 0 {
		t.Errorf("sessions %d reconnects %d recovered %d joins %d sid changed %d first %d; want 3 2 1 2 0 0",
			fc.sessions, fc.reconnects, fc.recovered, fc.joins, fc.sidChanged, fc.first)
	}
	if fc.replayed != 2 || fc.noOffset != 0 || fc.dupReplay != 1 || fc.staleReplay != 1 {
		t.Errorf("replayed %d, without offset %d, duplicates in a replay %d, stale %d; want 2 0 1 1", fc.replayed, fc.noOffset, fc.dupReplay, fc.staleReplay)
	}
	if fc.pid != "P2" || fc.offset != "o-3" {
		t.Errorf("pid %q offset %q, want P2 o-3", fc.pid, fc.offset)
	}
	got := tallyFleetClient(fc.led, fc.first, 0, 1, []int8{pubOK, pubOK, pubOK, pubOK, pubOK}, nil)
	if got != (fleetTally{Expected: 5, Received: 5, Duplicated: 2, OutOfOrder: 1}) {
		t.Errorf("tally %+v", got)
	}
}

// TestFleetPublisher: a refused connection moves the publisher to the
// next instance (the message is sent there); an answer other than 202
// too; a timeout after the request was written is "not sent", not retried.
func TestFleetPublisher(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/emit" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		var b struct {
			Rooms []string          `json:"rooms"`
			Event string            `json:"event"`
			Args  []json.RawMessage `json:"args"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.Event != "msg" || len(b.Rooms) != 1 || len(b.Args) != 1 {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		bodies = append(bodies, b.Rooms[0]+" "+string(b.Args[0]))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer ok.Close()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "draining", http.StatusServiceUnavailable)
	}))
	defer refusing.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + l.Addr().String()
	l.Close()
	insts := []*fleetInst{{idx: 0, name: "a", url: closedURL}, {idx: 1, name: "b", url: refusing.URL}, {idx: 2, name: "c", url: ok.URL}}
	for _, in := range insts {
		in.up.Store(true)
	}
	p := newFleetPublisher(insts, "tok", 4)
	if res := p.publish(5); res != pubOK {
		t.Fatalf("publish: %d", res)
	}
	if p.cur != 2 || len(bodies) != 1 || bodies[0] != `r1 {"room":"r1","seq":5}` {
		t.Errorf("cur %d bodies %q", p.cur, bodies)
	}
	// Instance c is marked down: the publisher goes to the next one up.
	insts[2].up.Store(false)
	insts[0].url = ok.URL
	if res := p.publish(6); res != pubOK || p.cur != 0 {
		t.Errorf("publish with c down: %d, cur %d", res, p.cur)
	}
	// No answer in time: not sent, and not retried.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * time.Second)
	}))
	defer slow.Close()
	insts[0].url = slow.URL
	n := len(bodies)
	if res := p.publish(7); res != pubFailed {
		t.Errorf("timeout: %d, want not sent", res)
	}
	if len(bodies) != n {
		t.Error("a message whose outcome is unknown was sent again")
	}
}

func TestFleetNginxConf(t *testing.T) {
	c := fleetNginxConf("/tmp/x", 9000, []int{9001, 9002}, true)
	for _, want := range []string{"user root;", "listen 127.0.0.1:9000;", "server 127.0.0.1:9001 max_fails=0;", "server 127.0.0.1:9002", "proxy_next_upstream error timeout http_502 http_503;", `proxy_set_header Upgrade $http_upgrade;`} {
		if !strings.Contains(c, want) {
			t.Errorf("nginx.conf without %q:\n%s", want, c)
		}
	}
}
