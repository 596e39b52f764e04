package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// nodeStreamsScript is a Node Socket.IO 4.8 server on
// @socket.io/redis-streams-adapter 0.3.1 with connection state recovery
// (60 s). Its clients are socket.io-client: "a" (room1) at start, "b"
// (room-b, data {who:"b"}, no reconnection) on demand, and a client that
// presents a pid and offset to recover. Each stdin line runs one operation
// and prints its outcome as "<what> <json>" (Buffers as {hex}).
const nodeStreamsScript = `
const http = require("http");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-streams-adapter");
const { io: ioc } = require("socket.io-client");
const readline = require("readline");

const plain = (v) => JSON.parse(JSON.stringify(v === undefined ? null : v, (k, x) =>
  (x && x.type === "Buffer" && Array.isArray(x.data)) ? { hex: Buffer.from(x.data).toString("hex") } : x));
const say = (what, v) => console.log(what + " " + JSON.stringify(plain(v)));
const fail = (err) => say("error", String(err && err.message || err));

(async () => {
  const redis = createClient({ url: process.env.REDIS_URL });
  await redis.connect();
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(redis, { readCount: 100 }),
    connectionStateRecovery: { maxDisconnectionDuration: 60000, skipMiddlewares: true },
  });
  io.on("connection", (socket) => {
    const who = socket.handshake.query.who;
    if (!socket.recovered) {
      if (who === "a") socket.join("room1");
      if (who === "b") { socket.join("room-b"); socket.data = { who: "b" }; }
    }
    say("conn", { who, id: socket.id, recovered: socket.recovered, rooms: [...socket.rooms].sort(), data: socket.data });
  });
  io.on("to-node", (...args) => {
    const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
    say("sse", args);
    if (cb) cb({ node: "ack", got: args[0] });
  });
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const url = "http://127.0.0.1:" + httpServer.address().port;
  const a = ioc(url, { transports: ["websocket"], query: { who: "a" } });
  a.onAny((ev, ...args) => say("a-got", [ev, ...args]));
  await new Promise((resolve) => a.on("connect", resolve));
  let b;
  say("ready", { id: a.id });
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    const [cmd, arg] = [line.split(" ")[0], line.slice(line.indexOf(" ") + 1)];
    if (cmd === "emit-r1") { io.to("room1").emit("r1", "x"); say("emitted", cmd); }
    if (cmd === "emit-bin") { io.to("goroom").emit("from-node", 1, Buffer.from([1, 2])); say("emitted", cmd); }
    if (cmd === "fetch") io.fetchSockets().then((ss) => say("fetched",
      ss.map((s) => ({ id: s.id, rooms: [...s.rooms].sort(), data: s.data })).sort((x, y) => x.id < y.id ? -1 : 1)), fail);
    if (cmd === "sse") io.serverSideEmitWithAck("to-go", { n: 42 }).then((acks) => say("sse-acks", acks), fail);
    if (cmd === "join") { io.in("room1").socketsJoin("node-joined"); say("joined", {}); }
    if (cmd === "count") io.of("/").adapter.serverCount().then((n) => say("count", n), fail);
    if (cmd === "b-connect") {
      b = ioc(url, { transports: ["websocket"], query: { who: "b" }, reconnection: false });
      b.onAny((ev, ...args) => say("b-got", { args: [ev, ...args], offset: args[args.length - 1] }));
      b.on("connect", () => say("b-ready", { id: b.id, pid: b._pid }));
    }
    if (cmd === "hello-b") io.to("room-b").emit("hello-b", 1);
    if (cmd === "b-drop") { b.io.engine.close(); say("b-dropped", {}); }
    if (cmd === "recover") {
      const { pid, offset } = JSON.parse(arg);
      const c = ioc(url, { transports: ["websocket"], query: { who: "c" }, autoConnect: false, reconnection: false });
      c._pid = pid; c._lastOffset = offset;
      const events = [];
      c.onAny((ev, ...args) => events.push([ev, ...args]));
      c.on("connect", () => say("recovered", { recovered: c.recovered, id: c.id, events }));
      c.on("connect_error", fail);
      c.connect();
    }
  });
  process.stdin.on("end", () => process.exit(0));
})().catch((err) => { console.error(err); process.exit(1); });
`

// A Node server on @socket.io/redis-streams-adapter 0.3.1 and this plugin
// in streams mode on one Redis: broadcasts both ways (the same entries),
// requests both ways, and sessions recovered across them both ways.
func TestNodeStreams(t *testing.T) {
	modules := nodeModules(t)
	r := testkit.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	node := startNode(t, modules, nodeStreamsScript, "REDIS_URL="+r.URL())
	var ready struct{ ID string }
	if err := json.Unmarshal([]byte(node.expect(t, "ready")), &ready); err != nil || ready.ID == "" {
		t.Fatalf("ready: %+v %v", ready, err)
	}

	g := newStreamsInstance(t, r.URL(), `,"requests_timeout":"3s"`)
	if err := g.raw.EnableRecovery(ctx, sdk.RecoveryConfig{MaxDisconnection: time.Minute}); err != nil {
		t.Fatal(err)
	}
	core := newTestCore("go", []string{"room1", "goroom"}, []string{"goroom"})
	serve(t, g, core, "/")
	cb := subscribe(t, g.a)
	waitNumSub(t, rdb, "socket.io#/#", 2)
	node.send(t, "count")
	if got := node.expect(t, "count"); got != "2" {
		t.Fatalf("Node counts %s servers", got)
	}

	t.Run("the same entry as Node's", func(t *testing.T) {
		node.send(t, "emit-r1")
		node.expect(t, "emitted")
		eventually(t, "Node's r1 arrives", func() bool { return len(cb.event("r1")) == 1 })
		m := cb.event("r1")[0]
		if !reflect.DeepEqual(m.Rooms, []string{"room1"}) || string(m.Data) != `["r1","x"]` || !validOffset(m.Offset) {
			t.Fatalf("got %s offset %q", summarize([]sdk.AdapterMessage{m}), m.Offset)
		}
		if err := g.a.Publish(ctx, []sdk.AdapterMessage{{Namespace: "/", Rooms: []string{"room1"}, Data: []byte(`["r1","x"]`)}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "ours comes back (recovery)", func() bool { return len(cb.event("r1")) == 2 })
		var entries [][]string
		for _, e := range rawEntries(t, rdb, "socket.io") {
			if strings.Contains(strings.Join(e, " "), `"r1"`) {
				entries = append(entries, e[1:])
			}
		}
		if len(entries) != 2 {
			t.Fatalf("entries %q", entries)
		}
		// Same fields in the same order; only the uid differs, and ours
		// has mid last (Node's has none, and ignores it).
		nodeE, goE := entries[0], entries[1]
		if len(goE) != len(nodeE)+2 || goE[len(nodeE)] != "mid" || nodeE[0] != "uid" || goE[0] != "uid" || !reflect.DeepEqual(nodeE[2:], goE[2:len(nodeE)]) {
			t.Fatalf("Node's entry %q\n     ours %q", nodeE, goE)
		}
	})

	t.Run("broadcasts both ways", func(t *testing.T) {
		node.send(t, "emit-bin")
		eventually(t, "Node's binary broadcast arrives", func() bool { return len(cb.event("from-node")) == 1 })
		m := cb.event("from-node")[0]
		if string(m.Data) != `["from-node",1,{"_placeholder":true,"num":0}]` || !reflect.DeepEqual(m.Attachments, [][]byte{{1, 2}}) || !validOffset(m.Offset) {
			t.Fatalf("got %s", summarize([]sdk.AdapterMessage{m}))
		}
		if err := g.a.Publish(ctx, []sdk.AdapterMessage{{Namespace: "/", Rooms: []string{"room1"},
			Data: []byte(`["from-go","y",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{3}}}}); err != nil {
			t.Fatal(err)
		}
		var got []json.RawMessage
		for {
			if err := json.Unmarshal([]byte(node.expect(t, "a-got")), &got); err != nil {
				t.Fatal(err)
			}
			if string(got[0]) == `"from-go"` {
				break
			}
		}
		// The Node client gets the entry id as the last argument.
		var off string
		if len(got) != 4 || string(got[1]) != `"y"` || string(got[2]) != `{"hex":"03"}` || json.Unmarshal(got[3], &off) != nil || !validOffset(off) {
			t.Fatalf("Node's client got %s", got)
		}
	})

	t.Run("requests both ways", func(t *testing.T) {
		node.send(t, "fetch")
		got := node.expect(t, "fetched")
		for _, want := range []string{`"id":"go-1","rooms":["go-1","goroom","room1"]`, `"id":"go-2"`, `"id":"` + ready.ID + `"`} {
			if !strings.Contains(got, want) {
				t.Fatalf("Node fetched %s, no %s", got, want)
			}
		}
		node.send(t, "sse")
		jsonEqual(t, node.expect(t, "sse-acks"), `[{"from":"go","echo":{"n":42}}]`)

		f := ask(g, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/", Rooms: []string{"room1"}})
		if f.err != nil || f.res != (sdk.RequestResult{Expected: 1, Answered: 1}) || len(f.answers) != 1 || len(f.answers[0].Sockets) != 1 || f.answers[0].Sockets[0].ID != ready.ID {
			t.Fatalf("our fetch: %+v %v %+v", f.res, f.err, f.answers)
		}
		s := ask(g, sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Namespace: "/", WantAck: true, Data: []byte(`["to-node",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{4, 5}}})
		if s.err != nil || s.res != (sdk.RequestResult{Expected: 1, Answered: 1}) {
			t.Fatalf("our sse: %+v %v", s.res, s.err)
		}
		jsonEqual(t, node.expect(t, "sse"), `[{"hex":"0405"}]`)
		// Node answers in msgpack (always, on the streams adapter's pub/sub):
		// its Buffer comes back as binary.
		jsonEqual(t, string(s.answers[0].Ack), `{"node":"ack","got":{"_placeholder":true,"num":0}}`)
		if !reflect.DeepEqual(s.answers[0].AckAttachments, [][]byte{{4, 5}}) {
			t.Fatalf("ack attachments %v", s.answers[0].AckAttachments)
		}
		b := ask(g, sdk.ClusterRequest{Type: sdk.RequestBroadcastAck, Namespace: "/", Rooms: []string{"nobody"}, Data: []byte(`["q"]`), Timeout: 2 * time.Second})
		if b.err != nil || b.res.Answered != 1 || len(b.answers) != 1 || !b.answers[0].Count || b.answers[0].ClientCount != 0 {
			t.Fatalf("our broadcast with acks: %+v %v %+v", b.res, b.err, b.answers)
		}
		node.send(t, "join") // through the stream
		eventually(t, "Node's socketsJoin reaches us", func() bool {
			rooms := core.roomsOf("go-1")
			return len(rooms) == 4 && rooms[2] == "node-joined"
		})
		ask(g, sdk.ClusterRequest{Type: sdk.RequestSocketsJoin, Namespace: "/", Rooms: []string{"room1"}, Targets: []string{"joined-by-go"}})
		eventually(t, "Node's socket joins", func() bool {
			f := ask(g, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/", Rooms: []string{"joined-by-go"}})
			return len(f.answers) == 1 && len(f.answers[0].Sockets) == 1
		})
	})

	t.Run("a session Node persisted is restored here", func(t *testing.T) {
		node.send(t, "b-connect")
		var b struct{ ID, PID string }
		if err := json.Unmarshal([]byte(node.expect(t, "b-ready")), &b); err != nil || b.PID == "" {
			t.Fatalf("b: %+v %v", b, err)
		}
		node.send(t, "hello-b")
		var hello struct{ Offset string }
		_ = json.Unmarshal([]byte(node.expect(t, "b-got")), &hello)
		if !validOffset(hello.Offset) {
			t.Fatalf("b's offset %q", hello.Offset)
		}
		node.send(t, "b-drop")
		eventually(t, "Node persists b's session", func() bool { return rdb.Exists(ctx, "sio:session:"+b.PID).Val() == 1 })
		if err := g.a.Publish(ctx, []sdk.AdapterMessage{
			{Namespace: "/", Rooms: []string{"room-b"}, Data: []byte(`["missed-b",1]`)},
			{Namespace: "/", Rooms: []string{"elsewhere"}, Data: []byte(`["not-b"]`)},
			{Namespace: "/", Except: []string{"room-b"}, Data: []byte(`["not-b-either"]`)},
			{Namespace: "/", Data: []byte(`["missed-all"]`)},
		}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "published", func() bool { return len(cb.event("missed-all")) == 1 })
		rs, err := g.raw.RestoreSession(ctx, "/", b.PID, hello.Offset)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(rs.Rooms)
		wantRooms := []string{b.ID, "room-b"}
		sort.Strings(wantRooms)
		var missed []string
		for _, m := range rs.Missed {
			missed = append(missed, string(m.Data))
		}
		if rs.ID != b.ID || rs.PID != b.PID || !reflect.DeepEqual(rs.Rooms, wantRooms) || string(rs.Data) != `{"who":"b"}` ||
			!reflect.DeepEqual(missed, []string{`["missed-b",1]`, `["missed-all"]`}) || rs.Missed[1].Offset != cb.event("missed-all")[0].Offset {
			t.Fatalf("restored %+v data %s missed %q", rs.Session, rs.Data, missed)
		}
	})

	t.Run("a session saved here is recovered by a client on Node", func(t *testing.T) {
		const sid, pid = "GoSocketId0123456789", "GoPrivateId012345678"
		eventually(t, "the cursor has entries", func() bool { return g.raw.m.(*streams).lastRead("/") != "" })
		offset := g.raw.m.(*streams).lastRead("/")
		if err := g.raw.SaveSessions(ctx, []sdk.SessionChange{{State: sdk.SessionSaved, Session: sdk.Session{
			Namespace: "/", ID: sid, PID: pid, Rooms: []string{sid, "room-g"}, Data: []byte(`{"who":"go","n":[1,2.5]}`), User: "u-go"}}}); err != nil {
			t.Fatal(err)
		}
		if err := g.a.Publish(ctx, []sdk.AdapterMessage{
			{Namespace: "/", Rooms: []string{"room-g"}, Data: []byte(`["missed-g","z"]`)},
			{Namespace: "/", Rooms: []string{"room-x"}, Data: []byte(`["not-g"]`)},
		}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "published", func() bool { return len(cb.event("not-g")) == 1 })
		node.send(t, fmt.Sprintf(`recover {"pid":%q,"offset":%q}`, pid, offset))
		var conn struct {
			Who       string
			ID        string
			Recovered bool
			Rooms     []string
			Data      json.RawMessage
		}
		for conn.Who != "c" {
			if err := json.Unmarshal([]byte(node.expect(t, "conn")), &conn); err != nil {
				t.Fatal(err)
			}
		}
		if conn.ID != sid || !conn.Recovered || !reflect.DeepEqual(conn.Rooms, []string{sid, "room-g"}) {
			t.Fatalf("Node's server: %+v data %s", conn, conn.Data)
		}
		jsonEqual(t, string(conn.Data), `{"who":"go","n":[1,2.5]}`)
		var rec struct {
			Recovered bool
			ID        string
			Events    [][]json.RawMessage
		}
		if err := json.Unmarshal([]byte(node.expect(t, "recovered")), &rec); err != nil {
			t.Fatal(err)
		}
		if !rec.Recovered || rec.ID != sid || len(rec.Events) != 1 || len(rec.Events[0]) != 3 || string(rec.Events[0][0]) != `"missed-g"` {
			t.Fatalf("the client: %+v", rec)
		}
		if string(rec.Events[0][2]) != `"`+cb.event("missed-g")[0].Offset+`"` {
			t.Fatalf("missed packet's offset %s, want %s", rec.Events[0][2], cb.event("missed-g")[0].Offset)
		}
	})
}
