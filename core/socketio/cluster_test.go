package socketio_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/core/engineio"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/core/socketio"
	"github.com/socketfleet/socketfleet/core/socketio/localcluster"
	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// clusterHandler joins the rooms named in the CONNECT payload
// ({"rooms":[...]}) and answers server-side emits: "ping" is acknowledged
// with {"from":<instance>,"args":[...]}; other events are unknown.
type clusterHandler struct {
	name string
	mu   sync.Mutex
	seen []string // server events received: name + args
}

func (h *clusterHandler) Connect(s *socketio.Socket) error {
	var auth struct{ Rooms []string }
	_ = json.Unmarshal(s.Auth(), &auth)
	s.JoinOnConnect(auth.Rooms...)
	if len(auth.Rooms) > 0 {
		data, _ := json.Marshal(map[string]any{"rooms": auth.Rooms})
		s.SetIdentity("", data)
	}
	return nil
}
func (h *clusterHandler) Connected(*socketio.Socket)              {}
func (h *clusterHandler) Event(*socketio.Socket, *socketio.Event) {}
func (h *clusterHandler) Disconnected(*socketio.Socket, string)   {}

func (h *clusterHandler) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seen)
}

func rawList(args [][]byte) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = string(a)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func (h *clusterHandler) ServerEvent(_ *socketio.Namespace, name string, args, _ [][]byte, ack func([]byte, [][]byte)) bool {
	if name == "slow" { // acknowledged 200ms later
		if ack != nil {
			time.AfterFunc(200*time.Millisecond, func() { ack([]byte(`"late"`), nil) })
		}
		return true
	}
	if name != "ping" {
		return false
	}
	h.mu.Lock()
	h.seen = append(h.seen, name+rawList(args))
	h.mu.Unlock()
	if ack != nil {
		ack([]byte(`{"from":"`+h.name+`","args":`+rawList(args)+`}`), nil)
	}
	return true
}

// instance is one Socket.IO server on its own HTTP server, linked to a hub.
type instance struct {
	sio  *socketio.Server
	ns   *socketio.Namespace
	h    *clusterHandler
	ts   *httptest.Server
	node *localcluster.Node
}

func newInstance(t *testing.T, name string, hub *localcluster.Hub) *instance {
	t.Helper()
	log := quietLog()
	sio := socketio.NewServer(socketio.Options{Log: log, AckTimeout: 2 * time.Second})
	h := &clusterHandler{name: name}
	ns := sio.AddNamespace("/", h, nil)
	eio := engineio.NewServer(engineio.Options{PingInterval: time.Minute, PingTimeout: time.Minute,
		AllowPolling: true, AllowWebSocket: true, Log: log}, sio)
	ts := httptest.NewServer(eio)
	t.Cleanup(ts.Close)
	in := &instance{sio: sio, ns: ns, h: h, ts: ts}
	if hub != nil {
		in.node = hub.Join()
		sio.SetCluster(in.node)
		in.node.Receive(func(batch []sdk.AdapterMessage) {
			for _, m := range batch {
				sio.Namespace(m.Namespace).BroadcastLocal(rooms.Options{Rooms: m.Rooms, Except: m.Except}, m.Data, m.Attachments)
			}
		})
		// As the core does: never block the adapter's delivery.
		in.node.ServeRequests([]string{"/"}, func(r sdk.IncomingRequest) { go sio.ServeRequest(r) })
	}
	return in
}

// sclient is a raw WebSocket Socket.IO client that answers acks with
// ackWith (unless it is empty) and records every other frame.
type sclient struct {
	t      *testing.T
	c      *websocket.Conn
	id     string
	frames chan string
	closed chan struct{}
}

var ackRe = regexp.MustCompile(`^42(\d+)\[`)

func dialClient(t *testing.T, in *instance, auth, ackWith string) *sclient {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(in.ts.URL, "http")+"/socket.io/?EIO=4&transport=websocket&x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, open, err := c.ReadMessage(); err != nil || !strings.HasPrefix(string(open), `0{`) {
		t.Fatalf("open %q %v", open, err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("40"+auth)); err != nil {
		t.Fatal(err)
	}
	_, reply, err := c.ReadMessage()
	if err != nil || !strings.HasPrefix(string(reply), `40{"sid":"`) {
		t.Fatalf("connect %q %v", reply, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	sc := &sclient{t: t, c: c, id: string(reply[len(`40{"sid":"`) : len(reply)-2]), frames: make(chan string, 64), closed: make(chan struct{})}
	var wmu sync.Mutex
	go func() {
		defer close(sc.closed)
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			f := string(b)
			if m := ackRe.FindStringSubmatch(f); m != nil && ackWith != "" {
				wmu.Lock()
				_ = c.WriteMessage(websocket.TextMessage, []byte("43"+m[1]+"["+ackWith+"]"))
				wmu.Unlock()
			}
			select {
			case sc.frames <- f:
			default:
			}
		}
	}()
	return sc
}

func (c *sclient) next() string {
	c.t.Helper()
	select {
	case f := <-c.frames:
		return f
	case <-time.After(5 * time.Second):
		c.t.Fatal("no frame")
	}
	return ""
}

func (c *sclient) none(d time.Duration) {
	c.t.Helper()
	select {
	case f := <-c.frames:
		c.t.Fatalf("unexpected frame %q", f)
	case <-time.After(d):
	}
}

func ids(socks []sdk.RemoteSocket) []string {
	var out []string
	for _, s := range socks {
		out = append(out, s.ID)
	}
	slices.Sort(out)
	return out
}

func sorted(xs ...string) []string { slices.Sort(xs); return xs }

func TestClusterFetchRoomsJoinLeaveDisconnect(t *testing.T) {
	hub := &localcluster.Hub{}
	a, b := newInstance(t, "a", hub), newInstance(t, "b", hub)
	a1 := dialClient(t, a, `{"rooms":["red"]}`, "")
	b1 := dialClient(t, b, `{"rooms":["red","blue"]}`, "")
	b2 := dialClient(t, b, ``, "")
	ctx := context.Background()

	socks, truncated, reach, err := a.ns.FetchSockets(ctx, rooms.Options{Rooms: []string{"red"}}, 0)
	if err != nil || truncated || reach != (socketio.Reach{Expected: 2, Answered: 2}) {
		t.Fatalf("fetch: %v %v %+v", err, truncated, reach)
	}
	if got := ids(socks); !slices.Equal(got, sorted(a1.id, b1.id)) {
		t.Fatalf("fetch red: %v", got)
	}
	for _, s := range socks {
		var hs map[string]any
		if err := json.Unmarshal(s.Handshake, &hs); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"headers", "time", "address", "xdomain", "secure", "issued", "url", "query", "auth"} {
			if _, ok := hs[k]; !ok {
				t.Errorf("handshake of %s lacks %q: %s", s.ID, k, s.Handshake)
			}
		}
		if hs["address"] != "127.0.0.1" || !strings.Contains(string(s.Handshake), `"url":"/socket.io/?EIO=4&transport=websocket&x=1"`) || hs["query"].(map[string]any)["x"] != "1" || !strings.HasPrefix(hs["url"].(string), "/socket.io/?EIO=4") {
			t.Errorf("handshake %s", s.Handshake)
		}
		want := []string{s.ID, "red"}
		if s.ID == b1.id {
			want = append(want, "blue")
			if string(s.Data) != `{"rooms":["red","blue"]}` {
				t.Errorf("data %s", s.Data)
			}
		}
		if !slices.Equal(s.Rooms, want) {
			t.Errorf("rooms of %s: %v, want %v", s.ID, s.Rooms, want)
		}
	}
	socks, truncated, _, _ = a.ns.FetchSockets(ctx, rooms.Options{Except: []string{"blue"}}, 0)
	if got := ids(socks); !slices.Equal(got, sorted(a1.id, b2.id)) || truncated {
		t.Fatalf("fetch except blue: %v", got)
	}
	if socks, truncated, _, _ = a.ns.FetchSockets(ctx, rooms.Options{}, 2); len(socks) != 2 || !truncated {
		t.Fatalf("fetch max 2: %d sockets, truncated %v", len(socks), truncated)
	}
	for _, s := range socks {
		if s.ID == b2.id && string(s.Data) != "{}" { // as Node's socket.data
			t.Errorf("data without auth plugin: %s", s.Data)
		}
	}

	all, reach, err := a.ns.AllRooms(ctx)
	slices.Sort(all)
	if err != nil || !slices.Equal(all, []string{"blue", "red"}) || reach.Answered != 2 {
		t.Fatalf("all rooms %v %+v %v", all, reach, err)
	}

	// Every socket not in red joins green; then those in green leave blue.
	if _, err := a.ns.SocketsJoin(ctx, rooms.Options{Except: []string{"red"}}, []string{"green"}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "b2 in green", func() bool { return slices.Contains(b.ns.RoomIndex().Rooms(b2.id), "green") })
	if _, err := b.ns.SocketsJoin(ctx, rooms.Options{Rooms: []string{b1.id, a1.id}}, []string{"blue"}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "a1 in blue", func() bool { return slices.Contains(a.ns.RoomIndex().Rooms(a1.id), "blue") })
	if _, err := a.ns.SocketsLeave(ctx, rooms.Options{Rooms: []string{"blue"}}, []string{"red"}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "red emptied", func() bool {
		return len(a.ns.RoomIndex().Sockets([]string{"red"}))+len(b.ns.RoomIndex().Sockets([]string{"red"})) == 0
	})
	if slices.Contains(b.ns.RoomIndex().Rooms(b2.id), "blue") {
		t.Fatal("b2 joined blue although it is in no selected room")
	}

	// Disconnect from the namespace only, then whole connections.
	if _, err := a.ns.DisconnectSockets(ctx, rooms.Options{Rooms: []string{"green"}}, false); err != nil {
		t.Fatal(err)
	}
	if f := b2.next(); f != "41" {
		t.Fatalf("b2 got %q, want DISCONNECT", f)
	}
	if _, err := a.ns.DisconnectSockets(ctx, rooms.Options{Rooms: []string{"blue"}}, true); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*sclient{a1, b1} {
		select {
		case <-c.closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still connected", c.id)
		}
	}
	testkit.WaitFor(t, 5*time.Second, "no sockets left", func() bool { return a.ns.SocketCount()+b.ns.SocketCount() == 0 })
}

func TestClusterBroadcastWithAck(t *testing.T) {
	hub := &localcluster.Hub{}
	a, b := newInstance(t, "a", hub), newInstance(t, "b", hub)
	dialClient(t, a, `{"rooms":["r"]}`, `"a1"`)
	dialClient(t, b, `{"rooms":["r"]}`, `{"n":"b1"}`)
	mute := dialClient(t, b, `{"rooms":["r"]}`, "") // never acks
	outside := dialClient(t, b, ``, `"x"`)

	var got []string
	start := time.Now()
	res, err := a.ns.BroadcastWithAck(context.Background(), rooms.Options{Rooms: []string{"r"}}, []byte(`["q",1]`), nil,
		400*time.Millisecond, func(ack []byte, _ [][]byte) { got = append(got, string(ack)) })
	took := time.Since(start)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{`"a1"`, `{"n":"b1"}`}) {
		t.Fatalf("acks %v %v", got, err)
	}
	if res.Clients != 3 || res.Acks != 2 || res.Expected != 2 || res.Answered != 2 {
		t.Fatalf("result %+v", res)
	}
	if took < 400*time.Millisecond || took > 2*time.Second {
		t.Fatalf("took %v: the silent client must make it wait for the timeout, no longer", took)
	}
	if f := mute.next(); !strings.HasPrefix(f, `42`) || !strings.HasSuffix(f, `["q",1]`) {
		t.Fatalf("mute client got %q", f)
	}
	outside.none(100 * time.Millisecond)

	// Everyone answers: it returns as soon as the last ack is in.
	start = time.Now()
	res, err = a.ns.BroadcastWithAck(context.Background(), rooms.Options{Except: []string{mute.id}}, []byte(`["q",2]`), nil,
		5*time.Second, nil)
	if err != nil || res.Clients != 3 || res.Acks != 3 || time.Since(start) > 2*time.Second {
		t.Fatalf("all acked: %+v %v after %v", res, err, time.Since(start))
	}
}

func TestClusterServerSideEmit(t *testing.T) {
	hub := &localcluster.Hub{}
	a, b, c := newInstance(t, "a", hub), newInstance(t, "b", hub), newInstance(t, "c", hub)
	ctx := context.Background()

	reach, err := a.ns.ServerSideEmit(ctx, []byte(`["ping",1,{"k":"v"}]`), nil, nil)
	if err != nil || reach.LocalOnly {
		t.Fatalf("%+v %v", reach, err)
	}
	for _, in := range []*instance{a, b, c} {
		testkit.WaitFor(t, 5*time.Second, "ping on "+in.h.name, func() bool { return slices.Equal(in.h.events(), []string{`ping[1,{"k":"v"}]`}) })
	}

	var acks []string
	reach, err = b.ns.ServerSideEmit(ctx, []byte(`["ping","x"]`), nil, func(ack []byte, _ [][]byte) { acks = append(acks, string(ack)) })
	slices.Sort(acks)
	want := []string{`{"from":"a","args":["x"]}`, `{"from":"b","args":["x"]}`, `{"from":"c","args":["x"]}`}
	if err != nil || !slices.Equal(acks, want) || reach != (socketio.Reach{Expected: 3, Answered: 3}) {
		t.Fatalf("acks %v %+v %v", acks, reach, err)
	}

	// An event nobody knows: ignored, counted, and nobody answers.
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	acks = nil
	reach, _ = a.ns.ServerSideEmit(tctx, []byte(`["nobody"]`), nil, func(ack []byte, _ [][]byte) { acks = append(acks, string(ack)) })
	if len(acks) != 0 || reach.Answered != 0 || reach.Expected != 3 {
		t.Fatalf("unknown event: %v %+v", acks, reach)
	}
	testkit.WaitFor(t, 5*time.Second, "unknown counted", func() bool { return b.sio.Stats.ServerEventsUnknown.Load() == 1 })

	// A dead instance is expected but does not make the request hang.
	c.node.SetDown(true)
	hub.Timeout = 300 * time.Millisecond
	start := time.Now()
	acks = nil
	reach, err = a.ns.ServerSideEmit(ctx, []byte(`["ping"]`), nil, func(ack []byte, _ [][]byte) { acks = append(acks, string(ack)) })
	if err != nil || len(acks) != 2 || reach.Expected != 3 || reach.Answered != 2 || time.Since(start) > 2*time.Second {
		t.Fatalf("with a dead node: %v %+v %v after %v", acks, reach, err, time.Since(start))
	}
}

// A local acknowledgement that comes after the caller stopped waiting is
// neither passed on nor counted as an answer.
func TestServerSideEmitLateLocalAck(t *testing.T) {
	in := newInstance(t, "a", &localcluster.Hub{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var mu sync.Mutex
	var acks []string
	reach, err := in.ns.ServerSideEmit(ctx, []byte(`["slow"]`), nil, func(ack []byte, _ [][]byte) {
		mu.Lock()
		acks = append(acks, string(ack))
		mu.Unlock()
	})
	if err != nil || reach != (socketio.Reach{Expected: 1, Answered: 0}) {
		t.Fatalf("%+v %v", reach, err)
	}
	time.Sleep(300 * time.Millisecond) // the ack comes, and is dropped
	mu.Lock()
	defer mu.Unlock()
	if len(acks) != 0 {
		t.Fatalf("acks after return: %v", acks)
	}
}

func TestClusterLocalOnly(t *testing.T) {
	for _, tc := range []struct {
		name string
		hub  *localcluster.Hub
	}{{"no cluster", nil}, {"adapter without requests", &localcluster.Hub{Unsupported: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			a := newInstance(t, "a", tc.hub)
			a1 := dialClient(t, a, `{"rooms":["r"]}`, `"yes"`)
			socks, _, reach, err := a.ns.FetchSockets(context.Background(), rooms.Options{}, 0)
			if err != nil || !reach.LocalOnly || reach.Expected != 1 || len(socks) != 1 || socks[0].ID != a1.id {
				t.Fatalf("%v %+v %v", socks, reach, err)
			}
			var acks []string
			res, err := a.ns.BroadcastWithAck(context.Background(), rooms.Options{}, []byte(`["q"]`), nil, time.Second,
				func(ack []byte, _ [][]byte) { acks = append(acks, string(ack)) })
			if err != nil || !res.LocalOnly || res.Acks != 1 || !slices.Equal(acks, []string{`"yes"`}) {
				t.Fatalf("%+v %v %v", res, acks, err)
			}
			acks = nil
			reach, err = a.ns.ServerSideEmit(context.Background(), []byte(`["ping"]`), nil, func(ack []byte, _ [][]byte) { acks = append(acks, string(ack)) })
			if err != nil || !reach.LocalOnly || len(acks) != 1 {
				t.Fatalf("%+v %v %v", reach, acks, err)
			}
		})
	}
}
