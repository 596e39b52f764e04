package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/internal/testkit"
)

// reloadable serves the config file src (written to a temp file, which
// the returned write rewrites) with a server that reloads it.
func reloadable(t *testing.T, src string) (*Server, *httptest.Server, func(string)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.hcl")
	write := func(src string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(src)
	file, diags := config.LoadFile(path)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	s := newServer(file.Config, testLog(), "test", routingPlugins(file.Config, nil))
	s.reload.start(file)
	srv, ts := serveTest(t, s)
	return srv, ts, write
}

const reloadA = `
namespace "/" {
  event "join" {
    join {
      room  = args[0]
      allow = ["*"]
    }
    ack = [{ok = true}]
  }
  event "limited" {
    rate_limit = "1/s"
    rate_burst = 2
    ack        = ["ok"]
  }
  event "which" {
    ack = ["A"]
  }
}
namespace "/extra" {}
`

// A reload keeps every socket of the namespaces that stay, rate-limit
// buckets included; the next event runs the new rules; a removed
// namespace's sockets alone are disconnected (the client's connection
// stays), an added one is connectable at once.
func TestReloadSwapsRulesAndNamespacesKeepingSockets(t *testing.T) {
	s, ts, write := reloadable(t, reloadA)
	c, _ := member(t, ts, "r")
	c.send(`40/extra,`)
	if got := c.read(); !strings.HasPrefix(got, `40/extra,{"sid":"`) {
		t.Fatalf("connect /extra: %q", got)
	}
	// Spend the bucket of "limited" (burst 2).
	for i, want := range []string{`432["ok"]`, `433["ok"]`, `434[{"ok":false,"error":"rate limited"}]`} {
		c.send(`42` + string(rune('2'+i)) + `["limited"]`)
		if got := c.read(); got != want {
			t.Fatalf("limited %d: %q", i, got)
		}
	}

	// B: "which" answers B, "/extra" goes, "/more" comes, "limited" is
	// unchanged (its bucket, empty, carries over) and moves in the file.
	b := strings.Replace(reloadA, `ack = ["A"]`, `ack = ["B"]`, 1)
	b = strings.Replace(b, `namespace "/extra" {}`, `namespace "/more" {}`, 1)
	b = strings.Replace(b, `  event "join" {`, "  event \"new\" {\n    ack = [1]\n  }\n  event \"join\" {", 1)
	write(b)
	res, err := s.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.SocketsDisconnected != 1 || len(res.NamespacesAdded) != 1 || res.NamespacesAdded[0] != "/more" ||
		len(res.NamespacesRemoved) != 1 || res.NamespacesRemoved[0] != "/extra" {
		t.Fatalf("result %+v", res)
	}
	if got := c.read(); got != `41/extra,` {
		t.Fatalf("the removed namespace's socket: %q", got)
	}
	c.send(`425["which"]`)
	if got := c.read(); got != `435["B"]` {
		t.Fatalf("which after reload: %q", got)
	}
	c.send(`426["limited"]`)
	if got := c.read(); got != `436[{"ok":false,"error":"rate limited"}]` {
		t.Fatalf("the bucket did not carry over: %q", got)
	}
	c.send(`40/more,`)
	if got := c.read(); !strings.HasPrefix(got, `40/more,{"sid":"`) {
		t.Fatalf("connect /more: %q", got)
	}
	c.send(`40/extra,`)
	if got := c.read(); !strings.Contains(got, "Invalid namespace") {
		t.Fatalf("connect to the removed /extra: %q", got)
	}
	if n := s.SocketIO.Stats.Sockets.Load(); n != 2 {
		t.Fatalf("sockets %d, want 2 (/ and /more)", n)
	}

	// A broken file: refused, B goes on.
	write(b + "\nnamespace {")
	_, err = s.Reload(context.Background())
	var re *ReloadError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "c.hcl:") {
		t.Fatalf("broken config: %v", err)
	}
	c.send(`427["which"]`)
	if got := c.read(); got != `437["B"]` {
		t.Fatalf("which after a refused reload: %q", got)
	}
	if h := s.configHealth(); h.Generation != 2 || h.Reloads["failed"] != 1 || h.LastError == nil {
		t.Fatalf("health %+v", h)
	}
}

// Heartbeat values apply to sessions opened after the reload (a client
// keeps those it was told); CORS and cookies to the next request.
func TestReloadChangesHeartbeatCORSAndCookiesForNewSessions(t *testing.T) {
	base := "server {\n  ping_interval = \"25s\"\n}\nnamespace \"/\" {}\n"
	s, ts, write := reloadable(t, base)
	handshake := func() (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/socket.io/?EIO=4&transport=polling", nil)
		req.Header.Set("Origin", "https://app.example")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	if res, _ := handshake(); res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin before: %d", res.StatusCode)
	}
	old := dialWS(t, ts) // told 25 s
	write("server {\n  ping_interval = \"300ms\"\n  cors {\n    allowed_origins = [\"https://app.example\"]\n  }\n" +
		"  session_cookie {\n    name = \"io\"\n  }\n}\nnamespace \"/\" {}\n")
	if _, err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, body := handshake()
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(body, `"pingInterval":300,`) || !strings.HasPrefix(res.Header.Get("Set-Cookie"), "io=") {
		t.Fatalf("after reload: %d %v %q", res.StatusCode, res.Header, body)
	}
	// The old session keeps the 25 s it was told: no ping within 1 s.
	_ = old.c.SetReadDeadline(time.Now().Add(time.Second))
	if _, b, err := old.c.ReadMessage(); err == nil {
		t.Fatalf("the old session got %q within 1 s: pinged at the new interval", b)
	}
}

// reload { watch = true }: a changed file is reloaded; a broken one is
// tried once and refused, and the fixed one after it loads.
func TestReloadWatchesTheFile(t *testing.T) {
	src := "server {\n  reload {\n    watch    = true\n    interval = \"20ms\"\n  }\n}\nnamespace \"/\" {\n  event \"which\" {\n    ack = [\"A\"]\n  }\n}\n"
	s, ts, write := reloadable(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.watch(ctx)
	c, _ := member(t, ts)
	which := func() string {
		c.send(`421["which"]`)
		return c.read()
	}
	write(strings.Replace(src, `"A"`, `"B"`, 1) + "namespace {")
	testkit.WaitFor(t, 3*time.Second, "the broken file to be refused", func() bool { return s.reload.failed.Load() == 1 })
	time.Sleep(100 * time.Millisecond) // several intervals: not tried again
	if n := s.reload.failed.Load(); n != 1 || which() != `431["A"]` {
		t.Fatalf("failed %d times", n)
	}
	write(strings.Replace(src, `"A"`, `"B"`, 1))
	testkit.WaitFor(t, 3*time.Second, "the fixed file to load", func() bool { return s.reload.ok.Load() == 1 })
	if got := which(); got != `431["B"]` {
		t.Fatalf("after the watch reloaded: %q", got)
	}
}

// limitsConfig is a config with the limits block lim (loopback not exempt:
// the test's clients are 127.0.0.x addresses).
func limitsConfig(lim string) string {
	return "server {\n  limits {\n    per_ip_exempt = []\n" + lim + "  }\n}\n" + `
namespace "/" {
  event "join" {
    join {
      room  = args[0]
      allow = ["*"]
    }
    ack = [{ok = true}]
  }
  event "noop" {}
  event "sync" {
    ack = ["synced"]
  }
}
`
}

// A reload changes the limits for connections already open, which the
// reload itself leaves connected: a lowered packet rate limits the next
// packets (the bucket carries over), a lowered max_rooms the next join (a
// socket above it keeps its rooms), and the per-IP session bound the next
// handshake, counting the sessions opened before it.
func TestReloadChangesLimitsKeepingConnections(t *testing.T) {
	s, ts, write := reloadable(t, limitsConfig("    packet_rate = 1000\n    packet_burst = 1000\n    max_rooms = 3\n    max_connections_per_ip = 3\n"))
	addr := strings.TrimPrefix(ts.URL, "http://")
	c, id := member(t, ts, "r1", "r2") // from 127.0.0.1: one session there
	for range 20 {                     // well within 1000/s
		c.send(`42["noop"]`)
	}
	c.send(`424["sync"]`) // the server has read the 20 before the reload
	if got := c.read(); got != `434["synced"]` {
		t.Fatalf("sync: %q", got)
	}
	var held []*wsClient
	for i := range 2 {
		w, status := wsFrom(t, "127.0.0.2", addr, nil)
		if status != http.StatusOK {
			t.Fatalf("session %d of 127.0.0.2: %d", i, status)
		}
		held = append(held, w)
	}

	write(limitsConfig("    packet_rate = 2\n    packet_burst = 3\n    max_rooms = 1\n    max_connections_per_ip = 4\n"))
	if _, err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if o := s.Engine.Options(); o.PacketRate != 2 || o.PacketBurst != 3 {
		t.Errorf("engine options after the reload: rate %v, burst %d", o.PacketRate, o.PacketBurst)
	}
	// Still connected, in its two rooms, but joins no more.
	c.send(`421["join","r3"]`)
	if got := c.read(); got == `431[{"ok":true}]` || !strings.HasPrefix(got, `431[`) {
		t.Fatalf("join over the lowered max_rooms: %q", got)
	}
	if got := s.SocketIO.Namespace("/").RoomIndex().(interface{ Rooms(string) []string }).Rooms(id); len(got) != 3 { // its own room, r1, r2
		t.Fatalf("rooms after the reload: %v", got)
	}
	// 127.0.0.2 holds 2 sessions: 2 more under the raised bound of 4, then 429.
	for i := range 2 {
		w, status := wsFrom(t, "127.0.0.2", addr, nil)
		if status != http.StatusOK {
			t.Fatalf("session %d of 127.0.0.2 after raising the bound: %d", 3+i, status)
		}
		held = append(held, w)
	}
	if _, status := wsFrom(t, "127.0.0.2", addr, nil); status != http.StatusTooManyRequests {
		t.Fatalf("5th session of 127.0.0.2: %d, want 429 (the sessions before the reload counted)", status)
	}
	// Lowered to 1: the 4 sessions stay, a new one is refused.
	write(limitsConfig("    packet_rate = 2\n    packet_burst = 3\n    max_rooms = 1\n    max_connections_per_ip = 1\n"))
	if _, err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, status := wsFrom(t, "127.0.0.2", addr, nil); status != http.StatusTooManyRequests {
		t.Fatalf("session of 127.0.0.2 over the lowered bound: %d, want 429", status)
	}
	for i, w := range held {
		w.send("40")
		if got := w.read(); !strings.HasPrefix(got, `40{"sid":"`) {
			t.Fatalf("session %d of 127.0.0.2 after lowering the bound: %q", i, got)
		}
	}

	// 2 packets a second, 3 at once: a burst of 10 closes the connection.
	if n := s.Engine.RateLimited.Load(); n != 0 {
		t.Fatalf("rate limited before the burst: %d", n)
	}
	for range 10 { // the server may close before the last ones
		_ = c.c.WriteMessage(websocket.TextMessage, []byte(`42["noop"]`))
	}
	_ = c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		_, b, err := c.c.ReadMessage()
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("still connected after 10 packets at 2/s, burst 3")
			}
			break
		}
		if string(b) != "2" {
			t.Fatalf("got %q", b)
		}
	}
	if n := s.Engine.RateLimited.Load(); n != 1 {
		t.Fatalf("rate limited: %d, want 1", n)
	}
}
