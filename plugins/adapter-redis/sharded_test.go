package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// offlineSharded is a sharded mode whose client is never used.
func offlineSharded(t *testing.T, submode string) *sharded {
	t.Helper()
	s := newShardedMode(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), "socket.io", submode, time.Second)
	t.Cleanup(func() { _ = s.close() })
	return s
}

// The JSON Node's sharded adapter publishes for io.to("room1").emit("r1",
// "x") (protocol.md §5), and the other messages in Node's key order.
func TestShardedWireFormat(t *testing.T) {
	s := offlineSharded(t, subDynamic)
	s.uid = "d4a8d4a8d4a8d4a8"
	got, err := s.encodeBroadcast(&sdk.AdapterMessage{Namespace: "/", Rooms: []string{"room1"}, Data: []byte(`["r1","x"]`)}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":3,"data":{"packet":{"type":2,"data":["r1","x"]},"opts":{"rooms":["room1"],"except":[],"flags":{}}},"uid":"d4a8d4a8d4a8d4a8","nsp":"/"}`
	if string(got) != want {
		t.Fatalf("broadcast:\n got %s\nwant %s", got, want)
	}

	reqs := []struct {
		req  sdk.ClusterRequest
		want string
	}{
		{sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Rooms: []string{"a"}},
			`{"type":7,"data":{"opts":{"rooms":["a"],"except":[],"flags":{}},"requestId":"RID"},"uid":"d4a8d4a8d4a8d4a8","nsp":"/n"}`},
		{sdk.ClusterRequest{Type: sdk.RequestSocketsJoin, Except: []string{"b"}, Targets: []string{"t1", "t2"}},
			`{"type":4,"data":{"opts":{"rooms":[],"except":["b"],"flags":{}},"rooms":["t1","t2"]},"uid":"d4a8d4a8d4a8d4a8","nsp":"/n"}`},
		{sdk.ClusterRequest{Type: sdk.RequestSocketsLeave, Targets: []string{"t"}},
			`{"type":5,"data":{"opts":{"rooms":[],"except":[],"flags":{}},"rooms":["t"]},"uid":"d4a8d4a8d4a8d4a8","nsp":"/n"}`},
		{sdk.ClusterRequest{Type: sdk.RequestDisconnectSockets, Close: true},
			`{"type":6,"data":{"opts":{"rooms":[],"except":[],"flags":{}},"close":true},"uid":"d4a8d4a8d4a8d4a8","nsp":"/n"}`},
		{sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Data: []byte(`["hello",1]`)},
			`{"type":9,"data":{"packet":["hello",1]},"uid":"d4a8d4a8d4a8d4a8","nsp":"/n"}`},
		{sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Data: []byte(`["hello",1]`), WantAck: true},
			`{"type":9,"data":{"requestId":"RID","packet":["hello",1]},"uid":"d4a8d4a8d4a8d4a8","nsp":"/n"}`},
		{sdk.ClusterRequest{Type: sdk.RequestBroadcastAck, Rooms: []string{"r"}, Data: []byte(`["q"]`), Timeout: 1500 * time.Millisecond},
			`{"type":3,"data":{"packet":{"type":2,"data":["q"]},"requestId":"RID","opts":{"rooms":["r"],"except":[],"flags":{"timeout":1500}}},"uid":"d4a8d4a8d4a8d4a8","nsp":"/n"}`},
	}
	for _, c := range reqs {
		c.req.Namespace = "/n"
		got, _, err := s.encodeRequest("/n", "RID", &c.req)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("%v:\n got %s\nwant %s", c.req.Type, got, c.want)
		}
	}
	if _, _, err := s.encodeRequest("/", "RID", &sdk.ClusterRequest{Type: sdk.RequestAllRooms}); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("all rooms: %v, want ErrUnsupported", err)
	}

	resps := []struct {
		typ  sdk.RequestType
		r    sdk.ClusterResponse
		want string
	}{
		{sdk.RequestFetchSockets, sdk.ClusterResponse{Sockets: []sdk.RemoteSocket{{ID: "s1", Rooms: []string{"s1", "r"}, Data: []byte(`{"a":1}`), Handshake: []byte(`{"query":{}}`)}}},
			`{"type":8,"data":{"requestId":"RID","sockets":[{"id":"s1","handshake":{"query":{}},"rooms":["s1","r"],"data":{"a":1}}]},"uid":"d4a8d4a8d4a8d4a8","nsp":"/"}`},
		{sdk.RequestServerSideEmit, sdk.ClusterResponse{Ack: []byte(`"pong"`)},
			`{"type":10,"data":{"requestId":"RID","packet":"pong"},"uid":"d4a8d4a8d4a8d4a8","nsp":"/"}`},
		{sdk.RequestBroadcastAck, sdk.ClusterResponse{Count: true, ClientCount: 3},
			`{"type":11,"data":{"requestId":"RID","clientCount":3},"uid":"d4a8d4a8d4a8d4a8","nsp":"/"}`},
		{sdk.RequestBroadcastAck, sdk.ClusterResponse{},
			`{"type":12,"data":{"requestId":"RID","packet":null},"uid":"d4a8d4a8d4a8d4a8","nsp":"/"}`},
	}
	for _, c := range resps {
		got, err := s.encodeResponse(c.typ, "/", "RID", &c.r)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("%v answer:\n got %s\nwant %s", c.typ, got, c.want)
		}
	}
}

// Binary attachments make the message msgpack (as Node's notepack encode
// of the message); it decodes back to the same broadcast.
func TestShardedBinaryRoundTrip(t *testing.T) {
	s := offlineSharded(t, subDynamic)
	m := sdk.AdapterMessage{Namespace: "/chat", Rooms: []string{"a", "b"}, Except: []string{"c"}, Volatile: true,
		Data:        []byte(`["ev",{"z":1,"a":[true,null,1.5]},{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`),
		Attachments: [][]byte{{1, 2, 3}, {}}}
	b, err := s.encodeBroadcast(&m, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0x84 { // fixmap of 4: type, data, uid, nsp
		t.Fatalf("not msgpack: %x", b)
	}
	if !strings.Contains(string(b), "\xc4\x03\x01\x02\x03") {
		t.Fatalf("attachment not a msgpack bin: %x", b)
	}
	w, err := shDecode(b)
	if err != nil {
		t.Fatal(err)
	}
	data, err := shPacketData(w.Data.Packet)
	if err != nil {
		t.Fatal(err)
	}
	got := sdk.AdapterMessage{Namespace: w.Nsp, Rooms: w.Data.Opts.Rooms, Except: w.Data.Opts.Except,
		Data: data, Attachments: w.attachments, Volatile: w.Data.Opts.Flags.Volatile}
	if w.Type != shBroadcast || w.UID != s.uid || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: type %d uid %q\n got %+v %s\nwant %+v %s", w.Type, w.UID, got, got.Data, m, m.Data)
	}
}

// What Node sends decodes as Node meant it: a fetch answer with a Buffer in
// a socket's data (msgpack), flags with a timeout, numeric rooms.
func TestShardedDecodeNodeMessages(t *testing.T) {
	var buf strings.Builder
	// {type:8, data:{requestId:"r", sockets:[{id:"s", handshake:{}, rooms:["s"], data:{b:<bin 0a0b>}}]}, uid:"u", nsp:"/"}
	buf.WriteString("\x84\xa4type\x08\xa4data\x82\xa9requestId\xa1r\xa7sockets\x91\x84\xa2id\xa1s\xa9handshake\x80\xa5rooms\x91\xa1s\xa4data\x81\xa1b\xc4\x02\x0a\x0b\xa3uid\xa1u\xa3nsp\xa1/")
	w, err := shDecode([]byte(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	socks, err := shSockets(w.Data.Sockets, w.socketAttachments)
	if err != nil {
		t.Fatal(err)
	}
	want := []sdk.RemoteSocket{{ID: "s", Rooms: []string{"s"}, Data: []byte(`{"b":{"type":"Buffer","data":[10,11]}}`), Handshake: []byte(`{}`)}}
	if w.Type != shFetchResponse || *w.Data.RequestID != "r" || !reflect.DeepEqual(socks, want) {
		t.Fatalf("got type %d %+v", w.Type, socks)
	}

	w, err = shDecode([]byte(`{"type":3,"data":{"packet":{"type":2,"data":["e"],"nsp":"/"},"requestId":"q","opts":{"rooms":[1,"x"],"except":[],"flags":{"timeout":2500,"volatile":true}}},"uid":"u","nsp":"/"}`))
	if err != nil {
		t.Fatal(err)
	}
	o := w.Data.Opts
	if !reflect.DeepEqual([]string(o.Rooms), []string{"1", "x"}) || o.Flags.Timeout != 2500*time.Millisecond || !o.Flags.Volatile || *w.Data.RequestID != "q" {
		t.Fatalf("got %+v", o)
	}
}

func TestShardedBroadcastChannel(t *testing.T) {
	one := &sdk.AdapterMessage{Namespace: "/", Rooms: []string{"room1"}}
	sock := &sdk.AdapterMessage{Namespace: "/n", Rooms: []string{shSID("abc")}}
	two := &sdk.AdapterMessage{Namespace: "/", Rooms: []string{"a", "b"}}
	all := &sdk.AdapterMessage{}
	for _, c := range []struct {
		mode string
		m    *sdk.AdapterMessage
		want string
	}{
		{subDynamic, one, "socket.io#/#room1#"},
		{subDynamic, sock, "socket.io#/n#"},
		{subDynamic, two, "socket.io#/#"},
		{subDynamic, all, "socket.io#/#"},
		{subStatic, one, "socket.io#/#"},
		{subStatic, sock, "socket.io#/n#"},
		{subDynamicPrivate, one, "socket.io#/#room1#"},
		{subDynamicPrivate, sock, "socket.io#/n#" + shSID("abc") + "#"},
		{subDynamicPrivate, two, "socket.io#/#"},
	} {
		if got := offlineSharded(t, c.mode).broadcastChannel(c.m); got != c.want {
			t.Errorf("%s %v: %s, want %s", c.mode, c.m.Rooms, got, c.want)
		}
	}
}

func TestClusterSlot(t *testing.T) {
	for key, want := range map[string]int{
		"123456789":            12739, // CRC16 XMODEM check value 0x31C3
		"socket.io#/#":         13868, // CLUSTER KEYSLOT on a real server
		"socket.io#/#room1#":   9640,
		"socket.io#/#a#":       9927,
		"{user1000}.following": clusterSlot("user1000"),
		"foo{}{bar}":           clusterSlot("foo{}{bar}"), // empty tag: the whole key
	} {
		if got := clusterSlot(key); got != want {
			t.Errorf("slot(%q) = %d, want %d", key, got, want)
		}
	}
	if clusterSlot("foo{}{bar}") == clusterSlot("bar") {
		t.Error("an empty hash tag must not select the next one")
	}
}

func TestShardedConfig(t *testing.T) {
	for _, bad := range []string{
		`{"url":"redis://127.0.0.1:1","mode":"sharded","subscription_mode":"sometimes"}`,
		`{"url":"redis://127.0.0.1:1","mode":"sharded","cluster_nodes":["nohostport"]}`,
		`{"url":"redis://127.0.0.1:1/2","mode":"sharded","cluster_nodes":["127.0.0.1:2"]}`,
	} {
		p := &plugin{}
		if err := p.Configure(context.Background(), sdk.Config(bad)); err == nil {
			p.close()
			t.Errorf("Configure(%s) accepted", bad)
		}
	}
	p := &plugin{}
	defer p.close()
	if err := p.Configure(context.Background(), sdk.Config(`{"url":"redis://127.0.0.1:1","mode":"sharded","cluster_nodes":["127.0.0.1:2","127.0.0.1:3"],"requests_timeout":"750ms","subscription_mode":"static"}`)); err != nil {
		t.Fatal(err)
	}
	m, _ := p.mode()
	s := m.(*sharded)
	if !s.cluster || s.submode != subStatic || s.timeout != 750*time.Millisecond {
		t.Fatalf("cluster %v submode %q timeout %v", s.cluster, s.submode, s.timeout)
	}
}

// Two instances on one Redis 7 in the default (dynamic) mode.
func TestShardedTwoInstances(t *testing.T) {
	testkit.Need(t, "redis-server")
	r := testkit.StartRedis(t)
	cfg := fmt.Sprintf(`{"url":%q,"key":"sio","mode":"sharded"}`, r.URL())
	a := startSharded(t, cfg, []string{"/", "/chat"})
	b := startSharded(t, cfg, []string{"/", "/chat"})
	a.rooms(t, true, "/", "ra")
	b.rooms(t, true, "/", "rb", "shared", shSID("looks-like-a-sid"))
	b.rooms(t, true, "/chat", "rb")

	want := []string{"sio#/#", "sio#/#" + a.m.uid + "#", "sio#/#" + b.m.uid + "#", "sio#/#ra#", "sio#/#rb#", "sio#/#shared#",
		"sio#/chat#", "sio#/chat#" + a.m.uid + "#", "sio#/chat#" + b.m.uid + "#", "sio#/chat#rb#"}
	sort.Strings(want)
	shWaitUntil(t, "every channel subscribed", func() bool { return reflect.DeepEqual(shardChannels(t, r.Addr()), want) })
	if n := shardNumSub(t, "sio#/#", r.Addr()); n != 2 {
		t.Fatalf("SHARDNUMSUB sio#/# = %d", n)
	}

	bin := sdk.AdapterMessage{Namespace: "/", Rooms: []string{"rb"}, Except: []string{shSID("x")}, Volatile: true,
		Data: []byte(`["bin",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{7, 8, 9}}}
	a.publish(t,
		sdk.AdapterMessage{Namespace: "/", Data: []byte(`["all",1]`)},
		sdk.AdapterMessage{Namespace: "/", Rooms: []string{"rb"}, Data: []byte(`["one"]`)},
		sdk.AdapterMessage{Namespace: "/", Rooms: []string{"rb", "shared"}, Data: []byte(`["several"]`)},
		sdk.AdapterMessage{Namespace: "/", Rooms: []string{"ra"}, Data: []byte(`["not-for-b"]`)},
		sdk.AdapterMessage{Namespace: "/chat", Rooms: []string{"rb"}, Data: []byte(`["chat"]`)},
		bin,
		sdk.AdapterMessage{Namespace: "/", Data: []byte(`["marker"]`)},
	)
	b.waitEvent(t, "marker", 1)
	for ev, want := range map[string]sdk.AdapterMessage{
		"all":     {Namespace: "/", Data: []byte(`["all",1]`)},
		"one":     {Namespace: "/", Rooms: []string{"rb"}, Data: []byte(`["one"]`)},
		"several": {Namespace: "/", Rooms: []string{"rb", "shared"}, Data: []byte(`["several"]`)},
		"chat":    {Namespace: "/chat", Rooms: []string{"rb"}, Data: []byte(`["chat"]`)},
		"bin":     bin,
	} {
		got := b.event(ev)
		if len(got) != 1 {
			t.Errorf("%s: b got %d", ev, len(got))
			continue
		}
		norm := func(m sdk.AdapterMessage) sdk.AdapterMessage {
			if len(m.Rooms) == 0 {
				m.Rooms = nil
			}
			if len(m.Except) == 0 {
				m.Except = nil
			}
			return m
		}
		if !reflect.DeepEqual(norm(got[0]), norm(want)) {
			t.Errorf("%s: got %+v %s, want %+v", ev, got[0], got[0].Data, want)
		}
	}
	// b does not hold ra: the broadcast went on sio#/#ra#, which only a
	// (the sender, who drops its own) listens to.
	if n := len(b.event("not-for-b")); n != 0 {
		t.Errorf("b got %d broadcasts to a room it does not hold", n)
	}
	if n := len(a.event("all")) + len(a.event("marker")); n != 0 {
		t.Errorf("a got %d of its own broadcasts", n)
	}

	// b leaves rb: its channel goes, and broadcasts to rb no longer reach b.
	b.rooms(t, false, "/", "rb")
	shWaitUntil(t, "sio#/#rb# unsubscribed", func() bool { return !shContains(shardChannels(t, r.Addr()), "sio#/#rb#") })
	a.publish(t, sdk.AdapterMessage{Namespace: "/", Rooms: []string{"rb"}, Data: []byte(`["after-leave"]`)},
		sdk.AdapterMessage{Namespace: "/", Data: []byte(`["marker"]`)})
	b.waitEvent(t, "marker", 2)
	if n := len(b.event("after-leave")); n != 0 {
		t.Errorf("b got %d broadcasts to a room it left", n)
	}
	// A room created and deleted in one batch costs no subscription.
	b.m.roomsChanged(context.Background(), []sdk.RoomChange{{Namespace: "/", Room: "blip", Created: true}, {Namespace: "/", Room: "blip"}})
	if shContains(shardChannels(t, r.Addr()), "sio#/#blip#") {
		t.Error("a room created and deleted in one batch was subscribed")
	}
}

// Static mode: only the namespace and response channels; one-room
// broadcasts go on the namespace channel, as Node's static mode does.
func TestShardedStaticMode(t *testing.T) {
	testkit.Need(t, "redis-server")
	r := testkit.StartRedis(t)
	a := startSharded(t, fmt.Sprintf(`{"url":%q,"mode":"sharded","subscription_mode":"static"}`, r.URL()), []string{"/"})
	b := startSharded(t, fmt.Sprintf(`{"url":%q,"mode":"sharded","subscription_mode":"static"}`, r.URL()), []string{"/"})
	b.rooms(t, true, "/", "room1")
	want := []string{"socket.io#/#", "socket.io#/#" + a.m.uid + "#", "socket.io#/#" + b.m.uid + "#"}
	sort.Strings(want)
	shWaitUntil(t, "namespace and response channels only", func() bool { return reflect.DeepEqual(shardChannels(t, r.Addr()), want) })

	// A raw subscriber sees which channel the broadcast takes.
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	ps := rdb.SSubscribe(context.Background(), "socket.io#/#", "socket.io#/#room1#")
	defer ps.Close()
	if _, err := ps.ReceiveTimeout(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.ReceiveTimeout(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	a.publish(t, sdk.AdapterMessage{Namespace: "/", Rooms: []string{"room1"}, Data: []byte(`["static"]`)})
	msg, err := ps.ReceiveMessage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if msg.Channel != "socket.io#/#" {
		t.Errorf("static mode published a one-room broadcast on %s", msg.Channel)
	}
	b.waitEvent(t, "static", 1)
}

// Requests between instances on one Redis 7: every type, answers counted
// from SHARDNUMSUB, and a hung instance costs the timeout, not a hang.
func TestShardedRequests(t *testing.T) {
	testkit.Need(t, "redis-server")
	r := testkit.StartRedis(t)
	cfg := fmt.Sprintf(`{"url":%q,"mode":"sharded","requests_timeout":"3s"}`, r.URL())
	a := startSharded(t, cfg, []string{"/"}, fakeSocket{id: shSID("a1")})
	b := startSharded(t, cfg, []string{"/"}, fakeSocket{id: shSID("b1"), rooms: []string{"r"}}, fakeSocket{id: shSID("b2")})
	c := startSharded(t, cfg, []string{"/"}, fakeSocket{id: shSID("c1"), rooms: []string{"r"}})
	shWaitUntil(t, "three servers", func() bool { return shardNumSub(t, "socket.io#/#", r.Addr()) == 3 })
	ctx := context.Background()

	var mu sync.Mutex
	var answers []sdk.ClusterResponse
	collect := func(r sdk.ClusterResponse) {
		mu.Lock()
		answers = append(answers, r)
		mu.Unlock()
	}
	take := func() []sdk.ClusterResponse {
		mu.Lock()
		defer mu.Unlock()
		out := answers
		answers = nil
		return out
	}

	res, err := a.p.Request(ctx, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/", Rooms: []string{"r"}}, collect)
	if err != nil || res != (sdk.RequestResult{Expected: 2, Answered: 2}) {
		t.Fatalf("fetch sockets: %+v %v", res, err)
	}
	var ids []string
	for _, x := range take() {
		for _, s := range x.Sockets {
			ids = append(ids, s.ID)
			if string(s.Data) != `{"user":"`+s.ID[:4]+`"}` || string(s.Handshake) != `{"address":"127.0.0.1","query":{}}` || s.Rooms[0] != s.ID {
				t.Errorf("socket %+v", s)
			}
		}
	}
	sort.Strings(ids)
	if !reflect.DeepEqual(ids, []string{shSID("b1"), shSID("c1")}) {
		t.Errorf("fetch sockets in r: %v", ids)
	}

	res, err = a.p.Request(ctx, sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Namespace: "/", Data: []byte(`["hello",{"_placeholder":true,"num":0}]`),
		Attachments: [][]byte{{1}}, WantAck: true}, collect)
	if err != nil || res != (sdk.RequestResult{Expected: 2, Answered: 2}) {
		t.Fatalf("server-side emit: %+v %v", res, err)
	}
	for _, x := range take() {
		if string(x.Ack) != `"ack:hello"` {
			t.Errorf("server-side emit ack %s", x.Ack)
		}
	}
	for _, in := range []*shInstance{b, c} {
		got := in.core.requests()
		last := got[len(got)-1]
		if last.Type != sdk.RequestServerSideEmit || !last.WantAck || string(last.Data) != `["hello",{"_placeholder":true,"num":0}]` || !reflect.DeepEqual(last.Attachments, [][]byte{{1}}) {
			t.Errorf("server-side emit arrived as %+v", last)
		}
	}

	start := time.Now()
	res, err = a.p.Request(ctx, sdk.ClusterRequest{Type: sdk.RequestBroadcastAck, Namespace: "/", Except: []string{shSID("b2")},
		Data: []byte(`["ask"]`), Timeout: 2 * time.Second}, collect)
	if err != nil || res != (sdk.RequestResult{Expected: 2, Answered: 2}) {
		t.Fatalf("broadcast with ack: %+v %v", res, err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("broadcast with ack took %v although every ack was in", time.Since(start))
	}
	counts, acks := 0, []string{}
	for _, x := range take() {
		if x.Count {
			counts += x.ClientCount
		} else {
			acks = append(acks, string(x.Ack))
		}
	}
	sort.Strings(acks)
	if counts != 2 || !reflect.DeepEqual(acks, []string{`"` + shSID("b1") + `"`, `"` + shSID("c1") + `"`}) {
		t.Errorf("broadcast with ack: counts %d acks %v", counts, acks)
	}

	for _, req := range []sdk.ClusterRequest{
		{Type: sdk.RequestSocketsJoin, Namespace: "/", Rooms: []string{"r"}, Targets: []string{"t"}},
		{Type: sdk.RequestSocketsLeave, Namespace: "/", Targets: []string{"t"}},
		{Type: sdk.RequestDisconnectSockets, Namespace: "/", Except: []string{"r"}, Close: true},
		{Type: sdk.RequestServerSideEmit, Namespace: "/", Data: []byte(`["fire-and-forget"]`)},
	} {
		res, err := a.p.Request(ctx, req, collect)
		if err != nil || res != (sdk.RequestResult{}) {
			t.Fatalf("%v: %+v %v", req.Type, res, err)
		}
	}
	shWaitUntil(t, "the unanswered requests at b", func() bool { return len(b.core.requests()) == 7 })
	got := b.core.requests()[3:]
	if got[0].Type != sdk.RequestSocketsJoin || !reflect.DeepEqual(got[0].Targets, []string{"t"}) || !reflect.DeepEqual(got[0].Rooms, []string{"r"}) ||
		got[1].Type != sdk.RequestSocketsLeave || got[2].Type != sdk.RequestDisconnectSockets || !got[2].Close || !reflect.DeepEqual(got[2].Except, []string{"r"}) ||
		got[3].Type != sdk.RequestServerSideEmit || got[3].WantAck || got[3].Respond != nil {
		t.Errorf("b got %+v", got)
	}
	if len(a.core.requests()) != 0 {
		t.Errorf("a got its own requests: %+v", a.core.requests())
	}

	_, err = a.p.Request(ctx, sdk.ClusterRequest{Type: sdk.RequestAllRooms, Namespace: "/"}, collect)
	if !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("all rooms: %v, want ErrUnsupported", err)
	}

	// c hangs: a request gets b's answer and returns at its timeout.
	c.core.mu.Lock()
	c.core.mute = true
	c.core.mu.Unlock()
	start = time.Now()
	res, err = a.p.Request(ctx, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/", Timeout: 500 * time.Millisecond}, collect)
	if err != nil || res != (sdk.RequestResult{Expected: 2, Answered: 1}) {
		t.Fatalf("with a hung server: %+v %v", res, err)
	}
	if d := time.Since(start); d < 500*time.Millisecond || d > 3*time.Second {
		t.Errorf("with a hung server the request took %v (timeout 500ms)", d)
	}
	// ... and a server that is gone is no longer expected.
	c.p.close()
	shWaitUntil(t, "two servers", func() bool { return shardNumSub(t, "socket.io#/#", r.Addr()) == 2 })
	res, err = a.p.Request(ctx, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/"}, collect)
	if err != nil || res != (sdk.RequestResult{Expected: 1, Answered: 1}) {
		t.Fatalf("after c closed: %+v %v", res, err)
	}
}

// Three masters: the namespace, response and room channels of the two
// instances spread over the nodes; broadcasts and a request cross them.
func TestShardedRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	c := startRedisCluster(t)
	cfg := fmt.Sprintf(`{"url":"redis://%s","mode":"sharded","cluster_nodes":[%q,%q]}`, c.addr(0), c.addr(1), c.addr(2))
	a := startSharded(t, cfg, []string{"/"}, fakeSocket{id: shSID("a1")})
	b := startSharded(t, cfg, []string{"/"}, fakeSocket{id: shSID("b1"), rooms: []string{"x"}})

	// One room per master.
	owners := map[string]string{}
	var rooms []string
	for i := 0; len(rooms) < 3 && i < 100; i++ {
		room := fmt.Sprintf("room%d", i)
		owner := c.ownerOf(t, "socket.io#/#"+room+"#")
		if _, ok := owners[owner]; !ok {
			owners[owner] = room
			rooms = append(rooms, room)
		}
	}
	if len(rooms) != 3 {
		t.Fatalf("rooms on %d masters only", len(rooms))
	}
	b.rooms(t, true, "/", rooms...)
	addrs := []string{c.addr(0), c.addr(1), c.addr(2)}
	shWaitUntil(t, "b's room channels on their masters", func() bool {
		for owner, room := range owners {
			if !shContains(shardChannels(t, owner), "socket.io#/#"+room+"#") {
				return false
			}
		}
		return shardNumSub(t, "socket.io#/#", addrs...) == 2
	})
	if got, err := a.m.serverCount(context.Background(), "socket.io#/#"); err != nil || got != 2 {
		t.Fatalf("server count %d %v", got, err)
	}

	var msgs []sdk.AdapterMessage
	for _, room := range rooms {
		msgs = append(msgs, sdk.AdapterMessage{Namespace: "/", Rooms: []string{room}, Data: []byte(`["to-` + room + `"]`)})
	}
	msgs = append(msgs, sdk.AdapterMessage{Namespace: "/", Data: []byte(`["everyone"]`)})
	a.publish(t, msgs...)
	for _, room := range rooms {
		b.waitEvent(t, "to-"+room, 1)
	}
	b.waitEvent(t, "everyone", 1)

	// The other way: b publishes to a room a does not hold, then to all.
	b.publish(t, sdk.AdapterMessage{Namespace: "/", Rooms: []string{rooms[0]}, Data: []byte(`["not-for-a"]`)},
		sdk.AdapterMessage{Namespace: "/", Data: []byte(`["hello-a"]`)})
	a.waitEvent(t, "hello-a", 1)
	if len(a.event("not-for-a")) != 0 {
		t.Error("a got a broadcast to a room it does not hold")
	}

	var got []sdk.RemoteSocket
	res, err := a.p.Request(context.Background(), sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/", Rooms: []string{"x"}},
		func(r sdk.ClusterResponse) { got = append(got, r.Sockets...) })
	if err != nil || res != (sdk.RequestResult{Expected: 1, Answered: 1}) || len(got) != 1 || got[0].ID != shSID("b1") {
		t.Fatalf("fetch sockets over the cluster: %+v %v %+v", res, err, got)
	}

	// b leaves a room: its channel goes from its master.
	b.rooms(t, false, "/", rooms[1])
	shWaitUntil(t, "room channel unsubscribed", func() bool {
		return !shContains(shardChannels(t, addrs...), "socket.io#/#"+rooms[1]+"#")
	})
}

// A Redis restart: the subscription is reported degraded while Redis is
// down, and afterwards every channel is subscribed again and broadcasts
// and requests flow as before.
func TestShardedRedisRestart(t *testing.T) {
	testkit.Need(t, "redis-server")
	r := testkit.StartRedis(t)
	cfg := fmt.Sprintf(`{"url":%q,"mode":"sharded","requests_timeout":"2s"}`, r.URL())
	a := startSharded(t, cfg, []string{"/"})
	b := startSharded(t, cfg, []string{"/"}, fakeSocket{id: shSID("b1")})
	b.rooms(t, true, "/", "r")
	// Both instances' channels (namespace, response, room) confirmed: what
	// Redis holds then is what must come back.
	shWaitUntil(t, "subscribed", func() bool { return a.allConfirmed() && b.allConfirmed() })
	before := shardChannels(t, r.Addr())

	r.Kill()
	shWaitUntil(t, "subscription reported degraded", func() bool {
		st, _ := b.p.Status(context.Background())
		return strings.Contains(st.Degraded, "subscription")
	})
	r.Start()
	shWaitUntil(t, "every channel subscribed again", func() bool { return reflect.DeepEqual(shardChannels(t, r.Addr()), before) })
	shWaitUntil(t, "subscription healthy", func() bool {
		st, _ := b.p.Status(context.Background())
		return !strings.Contains(st.Degraded, "subscription")
	})
	a.publish(t, sdk.AdapterMessage{Namespace: "/", Rooms: []string{"r"}, Data: []byte(`["after-restart"]`)})
	b.waitEvent(t, "after-restart", 1)
	res, err := a.p.Request(context.Background(), sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/"}, func(sdk.ClusterResponse) {})
	if err != nil || res != (sdk.RequestResult{Expected: 1, Answered: 1}) {
		t.Fatalf("fetch sockets after the restart: %+v %v", res, err)
	}
}

// BenchmarkShardedBroadcast: one instance publishes one-room broadcasts
// (batches of 256) that another receives, on one Redis 7 and on a
// three-master cluster (rooms spread over the masters); msgs/s is what
// arrived.
func BenchmarkShardedBroadcast(b *testing.B) {
	for _, cluster := range []bool{false, true} {
		name := "redis7"
		if cluster {
			name = "cluster3"
		}
		b.Run(name, func(b *testing.B) {
			testkit.Need(b, "redis-server", "redis-cli")
			var cfg string
			if cluster {
				c := startRedisCluster(b)
				cfg = fmt.Sprintf(`{"url":"redis://%s","mode":"sharded","queue":1000000,"cluster_nodes":[%q,%q]}`, c.addr(0), c.addr(1), c.addr(2))
			} else {
				cfg = fmt.Sprintf(`{"url":%q,"mode":"sharded","queue":1000000}`, testkit.StartRedis(b).URL())
			}
			pub := startSharded(b, cfg, []string{"/"})
			sub := startSharded(b, cfg, []string{"/"})
			rooms := []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"}
			sub.rooms(b, true, "/", rooms...)
			shWaitUntil(b, "rooms subscribed", func() bool {
				for _, r := range rooms {
					if !sub.m.confirmed("socket.io#/#" + r + "#") {
						return false
					}
				}
				return true
			})
			batch := make([]sdk.AdapterMessage, 256)
			for i := range batch {
				batch[i] = sdk.AdapterMessage{Namespace: "/", Rooms: []string{rooms[i%len(rooms)]}, Data: []byte(`["ev","hello world",{"a":1,"b":[1,2,3]}]`)}
			}
			b.ResetTimer()
			sent := 0
			for sent < b.N {
				n := min(len(batch), b.N-sent)
				pub.publish(b, batch[:n]...)
				sent += n
			}
			deadline := time.Now().Add(time.Minute)
			for {
				sub.mu.Lock()
				got := len(sub.msgs)
				sub.mu.Unlock()
				if got >= sent {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d arrived", got, sent)
				}
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
