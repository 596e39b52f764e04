package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// nodeRequestsScript is a Node Socket.IO server on @socket.io/redis-adapter
// (requestsTimeout 3 s) with one socket.io-client connected, in room
// "room1", socket.data {who:"node"}; the client acknowledges "ask" with
// {client:"node", arg}. Server-side events "from-go" are printed and
// acknowledged. Each stdin line runs one cluster operation and prints its
// outcome as "<what> <json>" (Buffers as {hex}).
const nodeRequestsScript = `
const http = require("http");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-adapter");
const { io: ioc } = require("socket.io-client");
const readline = require("readline");

const plain = (v) => JSON.parse(JSON.stringify(v === undefined ? null : v, (k, x) =>
  (x && x.type === "Buffer" && Array.isArray(x.data)) ? { hex: Buffer.from(x.data).toString("hex") } : x));
const say = (what, v) => console.log(what + " " + JSON.stringify(plain(v)));
const fail = (err) => say("error", String(err && err.message || err));

(async () => {
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: createAdapter(pub, sub, { requestsTimeout: 3000 }) });
  io.on("connection", (socket) => { socket.data = { who: "node" }; socket.join("room1"); });
  io.on("from-go", (...args) => {
    const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
    say("sse", args);
    if (cb) cb({ node: "ack", got: args[0] });
  });
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const client = ioc("http://127.0.0.1:" + httpServer.address().port, { transports: ["websocket"], query: { who: "node-client" } });
  client.on("ask", (arg, cb) => cb({ client: "node", arg }));
  await new Promise((resolve) => client.on("connect", resolve));
  await new Promise((resolve) => setTimeout(resolve, 100));
  say("ready", { id: client.id });
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    if (line === "fetch") io.fetchSockets().then((ss) => say("fetched",
      ss.map((s) => ({ id: s.id, rooms: [...s.rooms].sort(), data: s.data, query: s.handshake.query }))
        .sort((a, b) => a.id < b.id ? -1 : 1)), fail);
    if (line === "sse") io.serverSideEmitWithAck("to-go", { n: 42 }).then((acks) => say("sse-acks", acks), fail);
    if (line === "bcast") io.timeout(3000).to("goroom").emitWithAck("q", 7).then((acks) => say("bcast-acks",
      acks.sort((a, b) => JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)), fail);
    if (line === "rooms") io.of("/").adapter.allRooms().then((r) => say("rooms", [...r].sort()), fail);
    if (line === "count") io.of("/").adapter.serverCount().then((n) => say("count", n), fail);
  });
  process.stdin.on("end", () => process.exit(0));
})().catch((err) => { console.error(err); process.exit(1); });
`

// nodeEmitterScript runs @socket.io/redis-emitter operations and exits.
const nodeEmitterScript = `
const { Emitter } = require("@socket.io/redis-emitter");
const { createClient } = require("redis");
(async () => {
  const redis = createClient({ url: process.env.REDIS_URL });
  await redis.connect();
  const e = new Emitter(redis);
  e.to("room1").emit("em", 1, Buffer.from([7, 8]));
  e.in("room1").socketsJoin("em-room");
  e.in("em-room").except("go-2").socketsLeave("goroom");
  e.serverSideEmit("em-sse", { x: 1 });
  e.in("go-2").disconnectSockets(true);
  await redis.quit();
  console.log("done ok");
})().catch((err) => { console.error(err); process.exit(1); });
`

// A Node server with @socket.io/redis-adapter 8.3.0 and this plugin on one
// Redis answer each other's requests (fetch sockets, all rooms, server-side
// emit with ack, broadcast with acks, join/disconnect), and
// @socket.io/redis-emitter 5.1.0 reaches the plugin.
func TestNodeRequests(t *testing.T) {
	modules := nodeModules(t)
	r := testkit.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	node := startNode(t, modules, nodeRequestsScript, "REDIS_URL="+r.URL())
	var ready struct{ ID string }
	if err := json.Unmarshal([]byte(node.expect(t, "ready")), &ready); err != nil || ready.ID == "" {
		t.Fatalf("ready: %+v %v", ready, err)
	}

	g := newRequestInstance(t, fmt.Sprintf(`{"url":%q,"requests_timeout":"3s"}`, r.URL()))
	core := newTestCore("go", []string{"room1", "goroom"}, []string{"goroom"})
	serve(t, g, core, "/")
	cb := subscribe(t, g.a)
	waitNumSub(t, rdb, "socket.io-request#/#", 2)
	node.send(t, "count")
	if got := node.expect(t, "count"); got != "2" {
		t.Fatalf("Node counts %s servers", got)
	}

	// The Node socket's rooms, sorted as the script and sort.Strings sort
	// them (its id is random).
	rooms := []string{ready.ID, "room1"}
	sort.Strings(rooms)
	b, _ := json.Marshal(rooms)
	nodeRooms := string(b)

	t.Run("Node fetchSockets sees ours", func(t *testing.T) {
		node.send(t, "fetch")
		got := node.expect(t, "fetched")
		want := fmt.Sprintf(`[{"id":"go-1","rooms":["go-1","goroom","room1"],"data":{"core":"go","n":[1,2.5,null]},"query":{"core":"go"}},`+
			`{"id":"go-2","rooms":["go-2","goroom"],"data":{"core":"go","n":[1,2.5,null]},"query":{"core":"go"}},`+
			`{"id":%q,"rooms":%s,"data":{"who":"node"},"query":{"who":"node-client","EIO":"4","transport":"websocket"}}]`, ready.ID, nodeRooms)
		jsonEqualAnyOrder(t, got, want)
	})

	t.Run("Node serverSideEmitWithAck gets our ack", func(t *testing.T) {
		node.send(t, "sse")
		jsonEqual(t, node.expect(t, "sse-acks"), `[{"from":"go","echo":{"n":42}}]`)
		in := core.requests()[len(core.requests())-1]
		if in.Type != sdk.RequestServerSideEmit || string(in.Data) != `["to-go",{"n":42}]` || !in.WantAck {
			t.Fatalf("we got %+v %s", in.ClusterRequest, in.Data)
		}
	})

	t.Run("Node broadcast with acks gets our clients' acks", func(t *testing.T) {
		node.send(t, "bcast")
		jsonEqual(t, node.expect(t, "bcast-acks"), `[{"socket":"go-1"},{"socket":"go-2"}]`)
		in := core.requests()[len(core.requests())-1]
		if in.Type != sdk.RequestBroadcastAck || string(in.Data) != `["q",7]` || !reflect.DeepEqual(in.Rooms, []string{"goroom"}) || in.Timeout != 3*time.Second {
			t.Fatalf("we got %+v %s", in.ClusterRequest, in.Data)
		}
	})

	t.Run("Node allRooms sees ours", func(t *testing.T) {
		node.send(t, "rooms")
		jsonEqualAnyOrder(t, node.expect(t, "rooms"), fmt.Sprintf(`["go-1","go-2","goroom",%q,"room1"]`, ready.ID))
	})

	t.Run("our fetch sees Node's socket", func(t *testing.T) {
		got := ask(g, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/", Rooms: []string{"room1"}})
		if got.err != nil || got.res != (sdk.RequestResult{Expected: 1, Answered: 1}) || len(got.answers) != 1 || len(got.answers[0].Sockets) != 1 {
			t.Fatalf("%+v %v %+v", got.res, got.err, got.answers)
		}
		s := got.answers[0].Sockets[0]
		var hs struct {
			Query   map[string]string `json:"query"`
			Address string            `json:"address"`
			Secure  *bool             `json:"secure"`
		}
		if err := json.Unmarshal(s.Handshake, &hs); err != nil || hs.Query["who"] != "node-client" || hs.Address == "" || hs.Secure == nil {
			t.Fatalf("handshake %s (%v)", s.Handshake, err)
		}
		sort.Strings(s.Rooms)
		if s.ID != ready.ID || !reflect.DeepEqual(s.Rooms, rooms) || string(s.Data) != `{"who":"node"}` {
			t.Fatalf("socket %+v data %s", s, s.Data)
		}
		t.Logf("fetch sockets from Node took %v", got.took)
	})

	t.Run("our broadcast with acks gets Node's client's ack", func(t *testing.T) {
		got := ask(g, sdk.ClusterRequest{Type: sdk.RequestBroadcastAck, Namespace: "/", Rooms: []string{"room1"},
			Data: []byte(`["ask",{"q":1}]`), Timeout: 3 * time.Second})
		if got.err != nil || got.res != (sdk.RequestResult{Expected: 1, Answered: 1}) {
			t.Fatalf("%+v %v", got.res, got.err)
		}
		if len(got.answers) != 2 || !got.answers[0].Count || got.answers[0].ClientCount != 1 ||
			string(got.answers[1].Ack) != `{"client":"node","arg":{"q":1}}` {
			t.Fatalf("answers %+v", got.answers)
		}
		if got.took > 2*time.Second {
			t.Errorf("took %v: should end with the ack", got.took)
		}
	})

	t.Run("our server-side emit with binary reaches Node, and its ack us", func(t *testing.T) {
		got := ask(g, sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Namespace: "/", WantAck: true,
			Data: []byte(`["from-go",{"_placeholder":true,"num":0},"x"]`), Attachments: [][]byte{{1, 2, 3}}})
		if got.err != nil || got.res != (sdk.RequestResult{Expected: 1, Answered: 1}) || len(got.answers) != 1 {
			t.Fatalf("%+v %v", got.res, got.err)
		}
		jsonEqual(t, node.expect(t, "sse"), `[{"hex":"010203"},"x"]`)
		// Node answers in JSON: its Buffer as JSON.stringify writes it.
		jsonEqual(t, string(got.answers[0].Ack), `{"node":"ack","got":{"type":"Buffer","data":[1,2,3]}}`)
	})

	t.Run("our all rooms, join and disconnect reach Node", func(t *testing.T) {
		ask(g, sdk.ClusterRequest{Type: sdk.RequestSocketsJoin, Namespace: "/", Rooms: []string{"room1"}, Targets: []string{"joined-by-go"}})
		eventually(t, "Node's socket joins joined-by-go", func() bool {
			got := ask(g, sdk.ClusterRequest{Type: sdk.RequestAllRooms, Namespace: "/"})
			return len(got.answers) == 1 && slices.Contains(got.answers[0].Rooms, "joined-by-go")
		})
		ask(g, sdk.ClusterRequest{Type: sdk.RequestDisconnectSockets, Namespace: "/", Rooms: []string{"joined-by-go"}, Close: true})
		eventually(t, "Node's socket is gone", func() bool {
			got := ask(g, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/"})
			return got.res.Answered == 1 && len(got.answers[0].Sockets) == 0
		})
	})

	t.Run("redis-emitter reaches us", func(t *testing.T) {
		n := len(core.requests())
		em := startNode(t, modules, nodeEmitterScript, "REDIS_URL="+r.URL())
		em.expect(t, "done")
		eventually(t, "the emitter's broadcast arrives", func() bool { return len(cb.event("em")) == 1 })
		want := sdk.AdapterMessage{Namespace: "/", Rooms: []string{"room1"},
			Data: []byte(`["em",1,{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{7, 8}}}
		if got := cb.event("em")[0]; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %s", summarize([]sdk.AdapterMessage{got}))
		}
		eventually(t, "four emitter requests served", func() bool { return len(core.requests()) == n+4 })
		var got []string
		for _, in := range core.requests()[n:] {
			got = append(got, fmt.Sprintf("%s rooms=%q except=%q targets=%q close=%v data=%s ack=%v",
				in.Type, in.Rooms, in.Except, in.Targets, in.Close, in.Data, in.Respond != nil))
		}
		wantReqs := []string{
			`sockets_join rooms=["room1"] except=[] targets=["em-room"] close=false data= ack=false`,
			`sockets_leave rooms=["em-room"] except=["go-2"] targets=["goroom"] close=false data= ack=false`,
			`server_side_emit rooms=[] except=[] targets=[] close=false data=["em-sse",{"x":1}] ack=false`,
			`disconnect_sockets rooms=["go-2"] except=[] targets=[] close=true data= ack=false`,
		}
		if !reflect.DeepEqual(got, wantReqs) {
			t.Fatalf("served\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantReqs, "\n"))
		}
		if rooms := core.roomsOf("go-1"); !reflect.DeepEqual(rooms, []string{"em-room", "go-1", "room1"}) {
			t.Fatalf("go-1 is in %q", rooms)
		}
		if core.roomsOf("go-2") != nil {
			t.Fatal("go-2 not disconnected")
		}
	})
}

// jsonEqualAnyOrder compares two JSON arrays as multisets.
func jsonEqualAnyOrder(t *testing.T, got, want string) {
	t.Helper()
	norm := func(s string) string {
		var arr []json.RawMessage
		if err := json.Unmarshal([]byte(s), &arr); err != nil {
			t.Fatalf("not a JSON array: %s", s)
		}
		var items []string
		for _, a := range arr {
			var v any
			_ = json.Unmarshal(a, &v)
			b, _ := json.Marshal(v) // canonical: map keys sorted
			items = append(items, string(b))
		}
		sort.Strings(items)
		return "[" + strings.Join(items, ",") + "]"
	}
	jsonEqual(t, norm(got), norm(want))
}

func jsonEqual(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("not JSON: %s", got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want: %s", want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
