package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// shardedNodeScript is a Node Socket.IO server on createShardedAdapter
// (dynamic subscription mode) with one socket.io-client connected and in
// room "room1". It prints "ready <client socket id>", then obeys stdin
// lines: "emit" (io.to("room1").emit("x", 1, Buffer[1,2,3])), "emitall"
// (io.emit("y", "all")), "fetch" (io.fetchSockets()) and "sse"
// (io.serverSideEmitWithAck("hello-go", 1)), printing the results. The
// client answers "ask" broadcasts with "answer-from-node" and prints every
// "from-go" event; the server acknowledges the server-side event
// "ping-node" with "pong:<arg>".
const shardedNodeScript = `
const http = require("http");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createShardedAdapter } = require("@socket.io/redis-adapter");
const { io: ioc } = require("socket.io-client");
const readline = require("readline");

const say = (what, v) => console.log(what + " " + JSON.stringify(v));
(async () => {
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: createShardedAdapter(pub, sub) });
  io.on("connection", (socket) => { socket.data = { who: "node" }; socket.join("room1"); });
  io.on("ping-node", (arg, cb) => cb("pong:" + arg));
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const client = ioc("http://127.0.0.1:" + httpServer.address().port, { transports: ["websocket"] });
  client.on("from-go", (...args) => say("got", args.map((a) => (Buffer.isBuffer(a) || a instanceof ArrayBuffer) ? { hex: Buffer.from(a).toString("hex") } : a)));
  client.on("ask", (cb) => cb("answer-from-node"));
  await new Promise((resolve) => client.on("connect", resolve));
  await new Promise((resolve) => setTimeout(resolve, 200)); // the join, and room1's SSUBSCRIBE
  console.log("ready " + client.id);
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    if (line === "emit") io.to("room1").emit("x", 1, Buffer.from([1, 2, 3]));
    if (line === "emitall") io.emit("y", "all");
    if (line === "fetch") io.fetchSockets().then(
      (socks) => say("fetched", socks.map((s) => ({ id: s.id, rooms: [...s.rooms].sort(), data: s.data, address: s.handshake.address }))),
      (err) => say("error", err.message));
    if (line === "sse") io.serverSideEmitWithAck("hello-go", 1).then(
      (acks) => say("sse", acks), (err) => say("error", err.message));
  });
  process.stdin.on("end", () => process.exit(0));
})().catch((err) => { console.error(err); process.exit(1); });
`

// startShardedNode runs the Node side of the sharded interop test with
// the npm packages of test/e2e's lockfile (nodeModules).
func startShardedNode(t *testing.T, redisURL string) *nodeProc {
	t.Helper()
	return startNode(t, nodeModules(t), shardedNodeScript, "REDIS_URL="+redisURL)
}

func shJSONEqual(t *testing.T, what, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%s: %v in %s", what, err, got)
	}
	_ = json.Unmarshal([]byte(want), &w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// TestShardedNodeInterop runs Node's createShardedAdapter (8.3.0) and the
// plugin in sharded mode on one Redis 7: broadcasts, fetchSockets,
// server-side emits with acks and broadcasts with acks, both ways.
func TestShardedNodeInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Node")
	}
	testkit.Need(t, "redis-server", "node", "npm")
	r := testkit.StartRedis(t)
	node := startShardedNode(t, r.URL())
	nodeSID := node.expect(t, "ready")

	g := startSharded(t, fmt.Sprintf(`{"url":%q,"mode":"sharded"}`, r.URL()), []string{"/"},
		fakeSocket{id: shSID("go1"), rooms: []string{"room1"}})
	g.rooms(t, true, "/", "room1")
	shWaitUntil(t, "Node and Go subscribed", func() bool {
		return shardNumSub(t, "socket.io#/#", r.Addr()) == 2 && shardNumSub(t, "socket.io#/#room1#", r.Addr()) == 2
	})

	// Node → Go: a one-room broadcast (on room1's channel, with binary, so
	// msgpack) and one to everyone (namespace channel, JSON).
	node.send(t, "emit")
	node.send(t, "emitall")
	x := g.waitEvent(t, "x", 1)[0]
	want := sdk.AdapterMessage{Namespace: "/", Rooms: []string{"room1"}, Except: []string{},
		Data: []byte(`["x",1,{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{1, 2, 3}}}
	if x.Except == nil {
		x.Except = []string{}
	}
	if !reflect.DeepEqual(x, want) {
		t.Errorf("Node's broadcast arrived as %+v %s", x, x.Data)
	}
	if y := g.waitEvent(t, "y", 1)[0]; string(y.Data) != `["y","all"]` || len(y.Rooms) != 0 {
		t.Errorf("Node's io.emit arrived as %+v %s", y, y.Data)
	}

	// Go → Node: a one-room broadcast with binary reaches Node's client.
	g.publish(t, sdk.AdapterMessage{Namespace: "/", Rooms: []string{"room1"},
		Data: []byte(`["from-go",{"a":1,"b":[true,null,2.5]},{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{4, 5, 6}}})
	shJSONEqual(t, "Node's client got", node.expect(t, "got"), `[{"a":1,"b":[true,null,2.5]},{"hex":"040506"}]`)

	// Node's fetchSockets sees the Go socket; Go's sees the Node one.
	node.send(t, "fetch")
	sorted := func(l ...string) string {
		sort.Strings(l)
		b, _ := json.Marshal(l)
		return string(b)
	}
	shJSONEqual(t, "Node's fetchSockets", node.expect(t, "fetched"), fmt.Sprintf(
		`[{"id":%q,"rooms":%s,"data":{"who":"node"},"address":"127.0.0.1"},{"id":%q,"rooms":%s,"data":{"user":"go1_"},"address":"127.0.0.1"}]`,
		nodeSID, sorted(nodeSID, "room1"), shSID("go1"), sorted(shSID("go1"), "room1")))
	var socks []sdk.RemoteSocket
	res, err := g.p.Request(context.Background(), sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/", Rooms: []string{"room1"}},
		func(r sdk.ClusterResponse) { socks = append(socks, r.Sockets...) })
	if err != nil || res != (sdk.RequestResult{Expected: 1, Answered: 1}) || len(socks) != 1 {
		t.Fatalf("Go's fetch sockets: %+v %v %+v", res, err, socks)
	}
	s := socks[0]
	sort.Strings(s.Rooms)
	var hs struct {
		Address string          `json:"address"`
		Query   json.RawMessage `json:"query"`
	}
	_ = json.Unmarshal(s.Handshake, &hs)
	wantRooms := []string{nodeSID, "room1"}
	sort.Strings(wantRooms)
	if s.ID != nodeSID || !reflect.DeepEqual(s.Rooms, wantRooms) || string(s.Data) != `{"who":"node"}` || hs.Address != "127.0.0.1" || len(hs.Query) == 0 {
		t.Errorf("Node's socket as Go sees it: id %s rooms %v data %s handshake %s", s.ID, s.Rooms, s.Data, s.Handshake)
	}

	// Server-side emits with ack, both ways.
	node.send(t, "sse")
	shJSONEqual(t, "Node's serverSideEmitWithAck", node.expect(t, "sse"), `["ack:hello-go"]`)
	var acks []string
	res, err = g.p.Request(context.Background(), sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Namespace: "/",
		Data: []byte(`["ping-node","x"]`), WantAck: true}, func(r sdk.ClusterResponse) { acks = append(acks, string(r.Ack)) })
	if err != nil || res != (sdk.RequestResult{Expected: 1, Answered: 1}) || !reflect.DeepEqual(acks, []string{`"pong:x"`}) {
		t.Errorf("Go's server-side emit with ack: %+v %v %v", res, err, acks)
	}

	// A broadcast with ack from Go: Node counts its client, which answers.
	var answers []sdk.ClusterResponse
	res, err = g.p.Request(context.Background(), sdk.ClusterRequest{Type: sdk.RequestBroadcastAck, Namespace: "/", Rooms: []string{"room1"},
		Data: []byte(`["ask"]`), Timeout: 3 * time.Second}, func(r sdk.ClusterResponse) { answers = append(answers, r) })
	if err != nil || res != (sdk.RequestResult{Expected: 1, Answered: 1}) || len(answers) != 2 ||
		!answers[0].Count || answers[0].ClientCount != 1 || string(answers[1].Ack) != `"answer-from-node"` {
		t.Errorf("Go's broadcast with ack: %+v %v %+v", res, err, answers)
	}
}
