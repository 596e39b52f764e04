package main

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// nodeScript is a Node Socket.IO server on @socket.io/redis-adapter with one
// socket.io-client connected and in room "room1". Each "emit" line on stdin
// makes the server do io.to("room1").emit("x", 1, Buffer[1,2,3]); every
// "from-go" event the client receives is printed as a "got {...}" line.
const nodeScript = `
const http = require("http");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-adapter");
const { io: ioc } = require("socket.io-client");
const readline = require("readline");

(async () => {
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: createAdapter(pub, sub) });
  io.on("connection", (socket) => socket.join("room1"));
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const client = ioc("http://127.0.0.1:" + httpServer.address().port, { transports: ["websocket"] });
  client.on("from-go", (...args) => {
    const plain = args.map((a) => (Buffer.isBuffer(a) || a instanceof ArrayBuffer) ? { hex: Buffer.from(a).toString("hex") } : a);
    console.log("got " + JSON.stringify({ event: "from-go", args: plain }));
  });
  await new Promise((resolve) => client.on("connect", resolve));
  await new Promise((resolve) => setTimeout(resolve, 100)); // the join runs on the server's connection handler
  console.log("ready");
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    if (line === "emit") io.to("room1").emit("x", 1, Buffer.from([1, 2, 3]));
  });
  process.stdin.on("end", () => process.exit(0));
})().catch((err) => { console.error(err); process.exit(1); });
`

// TestNodeWireCompatibility runs a real Node server with
// @socket.io/redis-adapter against the plugin on one Redis: Node's
// broadcast arrives through Subscribe, and the plugin's Publish reaches the
// Node server's client.
func TestNodeWireCompatibility(t *testing.T) {
	modules := nodeModules(t)
	r := testkit.StartRedis(t)
	node := startNode(t, modules, nodeScript, "REDIS_URL="+r.URL())
	lines := node.lines
	nextLine := func(what string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("node exited while waiting for %s", what)
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatalf("node: no %s within 20s", what)
		}
		return ""
	}
	if l := nextLine("ready"); l != "ready" {
		t.Fatalf("node said %q, want ready", l)
	}

	// Node → Go.
	p := newPlugin(t, r.URL(), "socket.io")
	c := subscribe(t, p)
	deadline := time.Now().Add(20 * time.Second)
	for len(c.event("x")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal(`io.to("room1").emit("x", ...) from Node never arrived through Subscribe`)
		}
		c.running(t)
		node.send(t, "emit")
		time.Sleep(100 * time.Millisecond)
	}
	want := sdk.AdapterMessage{Namespace: "/", Rooms: []string{"room1"},
		Data: []byte(`["x",1,{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{1, 2, 3}}}
	if got := c.event("x")[0]; !reflect.DeepEqual(got, want) {
		t.Fatalf("from Node: got %s, want %s", summarize([]sdk.AdapterMessage{got}), summarize([]sdk.AdapterMessage{want}))
	}

	// Go → Node.
	msg := sdk.AdapterMessage{Namespace: "/", Rooms: []string{"room1"},
		Data:        []byte(`["from-go",{"a":1,"b":[true,null,2.5]},{"_placeholder":true,"num":0}]`),
		Attachments: [][]byte{{4, 5, 6}}}
	got := make(chan string, 1)
	go func() {
		for l := range lines {
			if strings.HasPrefix(l, "got ") {
				got <- strings.TrimPrefix(l, "got ")
				return
			}
		}
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline = time.Now().Add(20 * time.Second)
	for {
		if err := p.Publish(context.Background(), []sdk.AdapterMessage{msg}); err != nil {
			t.Fatal(err)
		}
		select {
		case l := <-got:
			var v, w any
			_ = json.Unmarshal([]byte(l), &v)
			_ = json.Unmarshal([]byte(`{"event":"from-go","args":[{"a":1,"b":[true,null,2.5]},{"hex":"040506"}]}`), &w)
			if !reflect.DeepEqual(v, w) {
				t.Fatalf("the Node client got %s", l)
			}
			return
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatal("Publish never reached the Node server's client")
		}
	}
}
