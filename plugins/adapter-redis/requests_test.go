package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// testCore does what a core does with requests from other instances, over
// a fixed set of sockets: enough to check each request type end to end.
type testCore struct {
	name string

	mu      sync.Mutex
	sockets map[string]map[string]bool // socket id → its rooms (its own id included)
	got     []sdk.IncomingRequest
	silent  bool // takes requests, never answers: a hung instance
}

// newTestCore holds sockets "<name>-1".."<name>-n"; each joins the rooms
// given for it (rooms[i] for socket i+1).
func newTestCore(name string, rooms ...[]string) *testCore {
	f := &testCore{name: name, sockets: map[string]map[string]bool{}}
	for i, rs := range rooms {
		id := fmt.Sprintf("%s-%d", name, i+1)
		set := map[string]bool{id: true}
		for _, r := range rs {
			set[r] = true
		}
		f.sockets[id] = set
	}
	return f
}

// selected are the socket ids in any of rooms (all when empty) and in none
// of except, sorted.
func (f *testCore) selected(rooms, except []string) []string {
	var ids []string
	for id, in := range f.sockets {
		ok := len(rooms) == 0
		for _, r := range rooms {
			ok = ok || in[r]
		}
		for _, r := range except {
			ok = ok && !in[r]
		}
		if ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func (f *testCore) remoteSocket(id string) sdk.RemoteSocket {
	var rooms []string
	for r := range f.sockets[id] {
		rooms = append(rooms, r)
	}
	sort.Strings(rooms)
	return sdk.RemoteSocket{ID: id, Rooms: rooms,
		Data:      []byte(fmt.Sprintf(`{"core":%q,"n":[1,2.5,null]}`, f.name)),
		Handshake: []byte(fmt.Sprintf(`{"address":"10.0.0.1","query":{"core":%q},"auth":{}}`, f.name))}
}

func (f *testCore) requests() []sdk.IncomingRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

func (f *testCore) roomsOf(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for r := range f.sockets[id] {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

func (f *testCore) handle(in sdk.IncomingRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, in)
	if f.silent {
		return
	}
	sel := f.selected(in.Rooms, in.Except)
	switch in.Type {
	case sdk.RequestFetchSockets:
		var out []sdk.RemoteSocket
		for _, id := range sel {
			out = append(out, f.remoteSocket(id))
		}
		in.Respond(sdk.ClusterResponse{Sockets: out})
	case sdk.RequestAllRooms:
		set := map[string]bool{}
		for _, rooms := range f.sockets {
			for r := range rooms {
				set[r] = true
			}
		}
		var out []string
		for r := range set {
			out = append(out, r)
		}
		sort.Strings(out)
		in.Respond(sdk.ClusterResponse{Rooms: out})
	case sdk.RequestSocketsJoin, sdk.RequestSocketsLeave:
		for _, id := range sel {
			for _, r := range in.Targets {
				if in.Type == sdk.RequestSocketsJoin {
					f.sockets[id][r] = true
				} else {
					delete(f.sockets[id], r)
				}
			}
		}
	case sdk.RequestDisconnectSockets:
		for _, id := range sel {
			delete(f.sockets, id)
		}
	case sdk.RequestServerSideEmit:
		if in.Respond == nil {
			return
		}
		var args []json.RawMessage
		_ = json.Unmarshal(in.Data, &args)
		echo := json.RawMessage("null")
		if len(args) > 1 {
			echo = args[1]
		}
		ack := []byte(fmt.Sprintf(`{"from":%q,"echo":%s}`, f.name, echo))
		go in.Respond(sdk.ClusterResponse{Ack: ack, AckAttachments: in.Attachments}) // later, from another goroutine
	case sdk.RequestBroadcastAck:
		in.Respond(sdk.ClusterResponse{Count: true, ClientCount: len(sel)})
		go func() {
			for _, id := range sel {
				time.Sleep(5 * time.Millisecond)
				in.Respond(sdk.ClusterResponse{Ack: []byte(fmt.Sprintf(`{"socket":%q}`, id))})
			}
		}()
	}
}

// reqInstance is one plugin behind the real gRPC boundary.
type reqInstance struct {
	raw *plugin
	a   sdk.Adapter
	r   sdk.Requester
	st  sdk.StatusReporter
}

func newRequestInstance(t *testing.T, cfg string) *reqInstance {
	t.Helper()
	raw := &plugin{}
	t.Cleanup(raw.close)
	p := plugintest.InProcess(t, raw)
	if err := p.Configure(context.Background(), sdk.Config(cfg)); err != nil {
		t.Fatal(err)
	}
	return &reqInstance{raw: raw, a: p.(sdk.Adapter), r: p.(sdk.Requester), st: p.(sdk.StatusReporter)}
}

// serve runs ServeRequests for f until the returned stop is called (or the
// test ends).
func serve(t *testing.T, in *reqInstance, f *testCore, namespaces ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.r.ServeRequests(ctx, namespaces, f.handle) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("ServeRequests did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitNumSub waits until channel has n subscribers.
func waitNumSub(t *testing.T, rdb *redis.Client, channel string, n int64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := rdb.PubSubNumSub(context.Background(), channel).Result()
		if err == nil && got[channel] == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d subscribers (err %v), want %d", channel, got[channel], err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type reply struct {
	answers []sdk.ClusterResponse
	res     sdk.RequestResult
	err     error
	took    time.Duration
}

func ask(in *reqInstance, req sdk.ClusterRequest) reply {
	var r reply
	start := time.Now()
	r.res, r.err = in.r.Request(context.Background(), req, func(a sdk.ClusterResponse) { r.answers = append(r.answers, a) })
	r.took = time.Since(start)
	return r
}

func (r reply) socketIDs() []string {
	var ids []string
	for _, a := range r.answers {
		for _, s := range a.Sockets {
			ids = append(ids, s.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

func (r reply) acks() []string {
	var out []string
	for _, a := range r.answers {
		if !a.Count {
			out = append(out, string(a.Ack))
		}
	}
	sort.Strings(out)
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Three instances serve requests; each request type sent by one reaches
// the other two (never itself) and their answers come back, before the
// timeout.
func TestRequestsThreeInstances(t *testing.T) {
	r := testkit.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	cfg := fmt.Sprintf(`{"url":%q,"key":"rq","requests_timeout":"3s"}`, r.URL())
	a, b, c := newRequestInstance(t, cfg), newRequestInstance(t, cfg), newRequestInstance(t, cfg)
	fa := newTestCore("a", []string{"room1"})
	fb := newTestCore("b", []string{"room1"}, []string{"room2"})
	fc := newTestCore("c", []string{"room1", "room2"}, nil)
	serve(t, a, fa, "/", "/chat")
	serve(t, b, fb, "/", "/chat")
	serve(t, c, fc, "/")
	waitNumSub(t, rdb, "rq-request#/#", 3)
	waitNumSub(t, rdb, "rq-request#/chat#", 2)

	t.Run("fetch sockets", func(t *testing.T) {
		got := ask(a, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/", Rooms: []string{"room1"}, Except: []string{"c-1"}})
		if got.err != nil || got.res != (sdk.RequestResult{Expected: 2, Answered: 2}) {
			t.Fatalf("result %+v, err %v", got.res, got.err)
		}
		if ids, want := got.socketIDs(), []string{"b-1"}; !reflect.DeepEqual(ids, want) {
			t.Fatalf("sockets %q, want %q", ids, want)
		}
		got = ask(a, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/", Rooms: []string{"room2"}})
		if ids, want := got.socketIDs(), []string{"b-2", "c-1"}; !reflect.DeepEqual(ids, want) {
			t.Fatalf("sockets %q, want %q", ids, want)
		}
		var s sdk.RemoteSocket
		for _, ans := range got.answers {
			for _, x := range ans.Sockets {
				if x.ID == "c-1" {
					s = x
				}
			}
		}
		if want := fc.remoteSocket("c-1"); !reflect.DeepEqual(s, want) {
			t.Fatalf("socket c-1 arrived as\n%+v %s %s\nwant\n%+v %s %s", s, s.Data, s.Handshake, want, want.Data, want.Handshake)
		}
		if got.took > 2*time.Second {
			t.Errorf("took %v: should end once both answered, not at the timeout", got.took)
		}
	})

	t.Run("namespace", func(t *testing.T) {
		got := ask(b, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/chat"})
		if got.res != (sdk.RequestResult{Expected: 1, Answered: 1}) || !reflect.DeepEqual(got.socketIDs(), []string{"a-1"}) {
			t.Fatalf("/chat: %+v %q", got.res, got.socketIDs())
		}
	})

	t.Run("all rooms", func(t *testing.T) {
		got := ask(c, sdk.ClusterRequest{Type: sdk.RequestAllRooms, Namespace: "/"})
		var rooms []string
		for _, ans := range got.answers {
			rooms = append(rooms, ans.Rooms...)
		}
		sort.Strings(rooms)
		want := []string{"a-1", "b-1", "b-2", "room1", "room1", "room2"}
		if got.res != (sdk.RequestResult{Expected: 2, Answered: 2}) || !reflect.DeepEqual(rooms, want) {
			t.Fatalf("%+v rooms %q, want %q", got.res, rooms, want)
		}
	})

	t.Run("join leave disconnect", func(t *testing.T) {
		got := ask(a, sdk.ClusterRequest{Type: sdk.RequestSocketsJoin, Namespace: "/", Rooms: []string{"room2"}, Targets: []string{"vip", "x"}})
		if got.err != nil || got.res != (sdk.RequestResult{}) {
			t.Fatalf("join: %+v %v", got.res, got.err)
		}
		eventually(t, "b-2 and c-1 join vip", func() bool {
			return slices.Contains(fb.roomsOf("b-2"), "vip") && slices.Contains(fc.roomsOf("c-1"), "vip")
		})
		if slices.Contains(fb.roomsOf("b-1"), "vip") || slices.Contains(fa.roomsOf("a-1"), "vip") {
			t.Fatal("a socket outside the selection joined, or the requester served its own request")
		}
		ask(a, sdk.ClusterRequest{Type: sdk.RequestSocketsLeave, Namespace: "/", Rooms: []string{"vip"}, Targets: []string{"x"}})
		eventually(t, "b-2 and c-1 leave x", func() bool {
			return !slices.Contains(fb.roomsOf("b-2"), "x") && !slices.Contains(fc.roomsOf("c-1"), "x")
		})
		ask(a, sdk.ClusterRequest{Type: sdk.RequestDisconnectSockets, Namespace: "/", Rooms: []string{"vip"}, Except: []string{"c-1"}, Close: true})
		eventually(t, "b-2 disconnected", func() bool { return fb.roomsOf("b-2") == nil })
		if fc.roomsOf("c-1") == nil {
			t.Fatal("c-1 disconnected despite except")
		}
		var last sdk.IncomingRequest
		for _, in := range fb.requests() {
			last = in
		}
		if last.Type != sdk.RequestDisconnectSockets || !last.Close || last.Respond != nil ||
			!reflect.DeepEqual(last.Rooms, []string{"vip"}) || !reflect.DeepEqual(last.Except, []string{"c-1"}) {
			t.Fatalf("b got %+v", last)
		}
	})

	t.Run("server-side emit", func(t *testing.T) {
		n := len(fb.requests())
		got := ask(a, sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Namespace: "/", Data: []byte(`["tick",7]`)})
		if got.err != nil || got.res != (sdk.RequestResult{}) {
			t.Fatalf("%+v %v", got.res, got.err)
		}
		eventually(t, "b gets the emit", func() bool { return len(fb.requests()) > n })
		in := fb.requests()[n]
		if in.Type != sdk.RequestServerSideEmit || string(in.Data) != `["tick",7]` || in.WantAck || in.Respond != nil {
			t.Fatalf("b got %+v %s", in, in.Data)
		}

		// With ack, and binary both ways.
		got = ask(a, sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Namespace: "/", WantAck: true,
			Data: []byte(`["ping",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{1, 2, 3}}})
		if got.err != nil || got.res != (sdk.RequestResult{Expected: 2, Answered: 2}) {
			t.Fatalf("%+v %v", got.res, got.err)
		}
		want := []string{`{"from":"b","echo":{"_placeholder":true,"num":0}}`, `{"from":"c","echo":{"_placeholder":true,"num":0}}`}
		if acks := got.acks(); !reflect.DeepEqual(acks, want) {
			t.Fatalf("acks %q, want %q", acks, want)
		}
		for _, ans := range got.answers {
			if !reflect.DeepEqual(ans.AckAttachments, [][]byte{{1, 2, 3}}) {
				t.Fatalf("ack attachments %v", ans.AckAttachments)
			}
		}
		in = fb.requests()[len(fb.requests())-1]
		if string(in.Data) != `["ping",{"_placeholder":true,"num":0}]` || !reflect.DeepEqual(in.Attachments, [][]byte{{1, 2, 3}}) || !in.WantAck {
			t.Fatalf("b got %+v %s", in, in.Data)
		}
	})

	t.Run("broadcast with acks", func(t *testing.T) {
		got := ask(a, sdk.ClusterRequest{Type: sdk.RequestBroadcastAck, Namespace: "/", Rooms: []string{"room1"},
			Data: []byte(`["ask",{"q":1}]`), Timeout: 3 * time.Second})
		if got.err != nil || got.res != (sdk.RequestResult{Expected: 2, Answered: 2}) {
			t.Fatalf("%+v %v", got.res, got.err)
		}
		counts := 0
		for _, ans := range got.answers {
			if ans.Count {
				counts += ans.ClientCount
			}
		}
		want := []string{`{"socket":"b-1"}`, `{"socket":"c-1"}`}
		if acks := got.acks(); counts != 2 || !reflect.DeepEqual(acks, want) {
			t.Fatalf("client counts %d, acks %q, want 2 and %q", counts, acks, want)
		}
		if got.took > 2*time.Second {
			t.Errorf("took %v: should end once every ack is in", got.took)
		}
		in := fc.requests()[len(fc.requests())-1]
		if in.Type != sdk.RequestBroadcastAck || string(in.Data) != `["ask",{"q":1}]` || in.Timeout != 3*time.Second {
			t.Fatalf("c got %+v %s", in, in.Data)
		}
	})

	t.Run("own requests not served", func(t *testing.T) {
		// a asked many things on "/"; it only served c's all rooms there,
		// and b's fetch on /chat.
		var got []string
		for _, in := range fa.requests() {
			got = append(got, in.Namespace+" "+in.Type.String())
		}
		if want := []string{"/chat fetch_sockets", "/ all_rooms"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("a served %q, want %q", got, want)
		}
	})
}

// A server that never answers (a zombie subscriber counted by NUMSUB, or an
// instance whose core does not answer) makes a request end at its timeout
// with Answered < Expected, never hang. Once an instance stops serving it
// is no longer expected.
func TestRequestDeadInstance(t *testing.T) {
	r := testkit.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	cfg := fmt.Sprintf(`{"url":%q,"key":"rq","requests_timeout":"600ms"}`, r.URL())
	a, b, d := newRequestInstance(t, cfg), newRequestInstance(t, cfg), newRequestInstance(t, cfg)
	fb := newTestCore("b", []string{"room1"})
	fd := newTestCore("d", []string{"room1"})
	fd.silent = true
	serve(t, a, newTestCore("a"), "/")
	serve(t, b, fb, "/")
	stopD := serve(t, d, fd, "/")
	// A zombie: a connection subscribed to the request channel that never
	// answers, as a Node process that hangs.
	zombie := rdb.Subscribe(context.Background(), "rq-request#/#")
	defer zombie.Close()
	waitNumSub(t, rdb, "rq-request#/#", 4)

	got := ask(a, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/"})
	if got.err != nil || got.res != (sdk.RequestResult{Expected: 3, Answered: 1}) || !reflect.DeepEqual(got.socketIDs(), []string{"b-1"}) {
		t.Fatalf("%+v %q %v", got.res, got.socketIDs(), got.err)
	}
	if got.took < 500*time.Millisecond || got.took > 3*time.Second {
		t.Errorf("took %v, want about requests_timeout (600ms)", got.took)
	}
	// A request's own timeout wins.
	got = ask(a, sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Namespace: "/", WantAck: true, Data: []byte(`["x"]`), Timeout: 200 * time.Millisecond})
	if got.res != (sdk.RequestResult{Expected: 3, Answered: 1}) || got.took > 2*time.Second {
		t.Fatalf("%+v after %v", got.res, got.took)
	}
	if len(fd.requests()) != 2 {
		t.Fatalf("d got %d requests, want 2", len(fd.requests()))
	}
	// A broadcast whose acks never all come ends at its timeout too.
	fb.mu.Lock()
	fb.silent = true
	fb.mu.Unlock()
	got = ask(a, sdk.ClusterRequest{Type: sdk.RequestBroadcastAck, Namespace: "/", Data: []byte(`["x"]`), Timeout: 300 * time.Millisecond})
	if got.res != (sdk.RequestResult{Expected: 3, Answered: 0}) || got.took > 2*time.Second {
		t.Fatalf("%+v after %v", got.res, got.took)
	}

	// d stops serving: it leaves the request channel.
	stopD()
	zombie.Close()
	waitNumSub(t, rdb, "rq-request#/#", 2)
	fb.mu.Lock()
	fb.silent = false
	fb.mu.Unlock()
	got = ask(a, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/"})
	if got.res != (sdk.RequestResult{Expected: 1, Answered: 1}) || got.took > 2*time.Second {
		t.Fatalf("%+v after %v", got.res, got.took)
	}
	// Nobody else: no wait at all.
	got = ask(a, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/nobody"})
	if got.err != nil || got.res != (sdk.RequestResult{}) || got.took > time.Second {
		t.Fatalf("%+v %v after %v", got.res, got.err, got.took)
	}
}

// Requests as the Node adapter and @socket.io/redis-emitter write them
// (protocol.md §4 and §6), published raw: emitter requests (no uid, uid
// "emitter"), the legacy single-socket forms answered with {requestId},
// legacy SOCKETS, msgpack requests; answers are in Node's shape on the
// shared response channel. Our own uid is ignored.
func TestRequestsNodeWire(t *testing.T) {
	r := testkit.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	cfg := fmt.Sprintf(`{"url":%q,"key":"rq"}`, r.URL())
	b, c := newRequestInstance(t, cfg), newRequestInstance(t, cfg)
	fb := newTestCore("b", []string{"room1"})
	fc := newTestCore("c", []string{"room1"})
	serve(t, b, fb, "/")
	serve(t, c, fc, "/")
	waitNumSub(t, rdb, "rq-request#/#", 2)
	// (ReceiveMessage with a timeout would make go-redis reconnect, losing
	// messages meanwhile: read through Channel.)
	resp := rdb.Subscribe(context.Background(), "rq-response#/#")
	defer resp.Close()
	if _, err := resp.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	answers := resp.Channel()
	ctx := context.Background()
	pub := func(payload string) {
		t.Helper()
		if err := rdb.Publish(ctx, "rq-request#/#", payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	next := func(what string) string {
		t.Helper()
		select {
		case m := <-answers:
			return m.Payload
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no answer", what)
		}
		return ""
	}
	noMore := func() {
		t.Helper()
		select {
		case m := <-answers:
			t.Fatalf("unexpected answer %s", m.Payload)
		case <-time.After(300 * time.Millisecond):
		}
	}

	// The emitter's socketsJoin, serverSideEmit.
	pub(`{"type":2,"opts":{"rooms":["room1"],"except":["c-1"]},"rooms":["from-emitter"]}`)
	pub(`{"uid":"emitter","type":6,"data":["hello",{"n":1}]}`)
	eventually(t, "b-1 joins from-emitter", func() bool { return slices.Contains(fb.roomsOf("b-1"), "from-emitter") })
	eventually(t, "c gets the emit", func() bool {
		in := fc.requests()
		return len(in) == 2 && in[1].Type == sdk.RequestServerSideEmit && string(in[1].Data) == `["hello",{"n":1}]` && !in[1].WantAck
	})
	if slices.Contains(fc.roomsOf("c-1"), "from-emitter") {
		t.Fatal("c-1 joined despite except")
	}

	// Legacy REMOTE_JOIN: only the server holding b-1 acts and answers.
	pub(`{"uid":"zzzzzz","requestId":"LegacY","type":2,"sid":"b-1","room":"legacy"}`)
	if got := next("legacy join"); got != `{"requestId":"LegacY"}` {
		t.Fatalf("legacy join answered %s", got)
	}
	eventually(t, "b-1 joins legacy", func() bool { return slices.Contains(fb.roomsOf("b-1"), "legacy") })
	noMore()

	// Legacy SOCKETS, ALL_ROOMS: one answer per server.
	pub(`{"uid":"zzzzzz","requestId":"SockS1","type":0,"rooms":["room1"]}`)
	got := []string{next("sockets"), next("sockets")}
	sort.Strings(got)
	if want := []string{`{"requestId":"SockS1","sockets":["b-1"]}`, `{"requestId":"SockS1","sockets":["c-1"]}`}; !reflect.DeepEqual(got, want) {
		t.Fatalf("SOCKETS answered %q, want %q", got, want)
	}

	// REMOTE_FETCH in msgpack (a receiver goes by the first byte).
	var buf strings.Builder
	w := msgpackMap(&buf, map[string]any{"uid": "zzzzzz", "requestId": "FetcH1", "type": 5,
		"opts": map[string]any{"rooms": []string{"room1"}, "except": []string{"c-1"}}})
	pub(w)
	ans := next("fetch")
	if other := next("fetch"); strings.Contains(ans, `"sockets":[]`) {
		ans = other
	} else if other != `{"requestId":"FetcH1","sockets":[]}` {
		t.Fatalf("c answered %s", other)
	}
	var fetch struct {
		RequestID string `json:"requestId"`
		Sockets   []struct {
			ID        string          `json:"id"`
			Handshake json.RawMessage `json:"handshake"`
			Rooms     []string        `json:"rooms"`
			Data      json.RawMessage `json:"data"`
		} `json:"sockets"`
	}
	if err := json.Unmarshal([]byte(ans), &fetch); err != nil || fetch.RequestID != "FetcH1" || len(fetch.Sockets) != 1 ||
		fetch.Sockets[0].ID != "b-1" || string(fetch.Sockets[0].Data) != `{"core":"b","n":[1,2.5,null]}` ||
		string(fetch.Sockets[0].Handshake) != `{"address":"10.0.0.1","query":{"core":"b"},"auth":{}}` {
		t.Fatalf("fetch answered %s (%v)", ans, err)
	}
	if want := `"rooms":["b-1","from-emitter","legacy","room1"]`; !strings.Contains(ans, want) {
		t.Fatalf("fetch answered %s, want %s", ans, want)
	}
	noMore()

	// A server-side emit with ack: {type:6, requestId, data} from each.
	pub(`{"uid":"zzzzzz","requestId":"SsE001","type":6,"data":["q",[1,"x"]]}`)
	got = []string{next("sse ack"), next("sse ack")}
	sort.Strings(got)
	if want := []string{`{"type":6,"requestId":"SsE001","data":{"from":"b","echo":[1,"x"]}}`,
		`{"type":6,"requestId":"SsE001","data":{"from":"c","echo":[1,"x"]}}`}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sse acks %q, want %q", got, want)
	}

	// Requests with an instance's own uid are not served by it.
	n := len(fb.requests())
	pub(fmt.Sprintf(`{"uid":%q,"requestId":"OwnUid","type":1}`, b.raw.m.(*classic).uid))
	if got := next("all rooms"); !strings.HasPrefix(got, `{"requestId":"OwnUid","rooms":["c-1",`) {
		t.Fatalf("all rooms answered %s", got)
	}
	noMore()
	if len(fb.requests()) != n {
		t.Fatal("b served its own request")
	}
}

// msgpackMap encodes v as notepack would, for requests in msgpack.
func msgpackMap(sb *strings.Builder, v map[string]any) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	o := &object{}
	for _, k := range keys {
		o.keys = append(o.keys, k)
		o.vals = append(o.vals, toValue(v[k]))
	}
	b, err := encodeValue(o, nil)
	if err != nil {
		panic(err)
	}
	sb.Write(b)
	return sb.String()
}

func toValue(v any) any {
	switch t := v.(type) {
	case int:
		return json.Number(fmt.Sprint(t))
	case []string:
		out := make([]any, len(t))
		for i, s := range t {
			out[i] = s
		}
		return out
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		o := &object{}
		for _, k := range keys {
			o.keys = append(o.keys, k)
			o.vals = append(o.vals, toValue(t[k]))
		}
		return o
	}
	return v
}

// While Redis is down a request fails within its timeout (it never hangs)
// and the requests subscription is reported down; after the restart the
// request channels are subscribed again and requests work.
func TestRequestsSurviveRedisRestart(t *testing.T) {
	r := testkit.StartRedis(t)
	cfg := fmt.Sprintf(`{"url":%q,"key":"rq","requests_timeout":"1s"}`, r.URL())
	a, b := newRequestInstance(t, cfg), newRequestInstance(t, cfg)
	serve(t, a, newTestCore("a"), "/")
	serve(t, b, newTestCore("b", nil), "/")
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	waitNumSub(t, rdb, "rq-request#/#", 2)
	if got := ask(a, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/"}); got.res.Answered != 1 {
		t.Fatalf("before: %+v %v", got.res, got.err)
	}
	r.Kill()
	got := ask(a, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/"})
	if got.err == nil || got.took > 3*time.Second {
		t.Fatalf("with Redis down: %+v %v after %v", got.res, got.err, got.took)
	}
	eventually(t, "a reports its requests subscription down", func() bool {
		return strings.Contains(degraded(t, a.st), "redis: requests subscription: ")
	})
	r.Start()
	waitNumSub(t, rdb, "rq-request#/#", 2)
	eventually(t, "requests answered again", func() bool {
		got := ask(a, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/"})
		return got.err == nil && got.res == (sdk.RequestResult{Expected: 1, Answered: 1}) && reflect.DeepEqual(got.socketIDs(), []string{"b-1"})
	})
	eventually(t, "a's status clears", func() bool { return degraded(t, a.st) == "" })
}
