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
