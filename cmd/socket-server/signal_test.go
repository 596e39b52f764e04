package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

// startServer runs bin with cfg on a free port (its output in srv.Out,
// logged if the test fails) and waits until it answers.
func startServer(t testing.TB, bin, cfg string) (srv *testkit.Process, addr string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr = testkit.FreeAddr(t)
	srv = testkit.Start(t, testkit.Command(bin, []string{"LISTEN_ADDR=" + addr}, "run", "--config", path))
	testkit.WaitHTTP(t, 10*time.Second, "http://"+addr+"/socket.io/?EIO=4&transport=polling")
	return srv, addr
}

// stopServer sends SIGTERM and fails the test unless the server exits
// within 10 s.
func stopServer(t *testing.T, srv *testkit.Process) {
	t.Helper()
	_ = srv.Signal(syscall.SIGTERM)
	srv.WaitExit(t, 10*time.Second)
}

func connectClients(t *testing.T, addr string, n int) []*websocket.Conn {
	t.Helper()
	out := make([]*websocket.Conn, n)
	for i := range out {
		out[i] = testkit.ConnectSocketIO(t, addr)
	}
	return out
}

const drainConfig = `
server {
  listen = env("LISTEN_ADDR")
  drain { timeout = "20s" }
}
namespace "/" {}
`

func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	bin := buildBinary(t)
	srv, addr := startServer(t, bin, drainConfig)
	clients := connectClients(t, addr, 5)
	_ = srv.Signal(syscall.SIGTERM)
	for i, c := range clients {
		if got := read(t, c); got != `42["server:maintenance",{"message":"Server maintenance, please reconnect","code":"SERVER_DRAINING"}]` {
			t.Fatalf("client %d: %q", i, got)
		}
	}
	res, err := http.Get("http://" + addr + "/ready")
	if err != nil || res.StatusCode != 503 {
		t.Fatalf("ready while draining: %v %v", res, err)
	}
	res.Body.Close()
	if code := srv.WaitExit(t, 5*time.Second); code != 0 {
		t.Fatalf("exit code %d\n%s", code, srv.Out)
	}
	for _, want := range []string{`"msg":"draining"`, `"msg":"drained"`, `"instance_id":"instance-`} {
		if !strings.Contains(srv.Out.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, srv.Out)
		}
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	bin := buildBinary(t)
	srv, addr := startServer(t, bin, drainConfig)
	connectClients(t, addr, 300) // a 3 s drain at 10 ms per connection
	_ = srv.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	_ = srv.Signal(syscall.SIGTERM)
	start := time.Now()
	code := srv.WaitExit(t, 2*time.Second)
	if took := time.Since(start); code != 1 || took > time.Second {
		t.Fatalf("exit %d after %v\n%s", code, took, srv.Out)
	}
}
