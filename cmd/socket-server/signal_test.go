package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func startServer(t *testing.T, bin, cfg string) (*exec.Cmd, string, *bytes.Buffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	cmd := exec.Command(bin, "run", "--config", path)
	cmd.Env = append(os.Environ(), "LISTEN_ADDR="+addr)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitUp(t, "http://"+addr+"/socket.io/?EIO=4&transport=polling")
	return cmd, addr, &logs
}

func connectClients(t *testing.T, addr string, n int) []*websocket.Conn {
	t.Helper()
	out := make([]*websocket.Conn, n)
	for i := range out {
		c := dial(t, "ws://"+addr+"/socket.io/?EIO=4&transport=websocket")
		read(t, c)
		_ = c.WriteMessage(websocket.TextMessage, []byte("40"))
		read(t, c)
		out[i] = c
	}
	return out
}

func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode(), time.Since(start)
	case <-time.After(within):
		t.Fatalf("server still running %v after the signal", within)
		return -1, 0
	}
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
	cmd, addr, logs := startServer(t, bin, drainConfig)
	clients := connectClients(t, addr, 5)
	_ = cmd.Process.Signal(syscall.SIGTERM)
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
	if code, _ := waitExit(t, cmd, 5*time.Second); code != 0 {
		t.Fatalf("exit code %d\n%s", code, logs)
	}
	for _, want := range []string{`"msg":"draining"`, `"msg":"drained"`, `"instance_id":"instance-`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	bin := buildBinary(t)
	cmd, addr, logs := startServer(t, bin, drainConfig)
	connectClients(t, addr, 300) // a 3 s drain at 10 ms per connection
	_ = cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	code, took := waitExit(t, cmd, 2*time.Second)
	if code != 1 || took > time.Second {
		t.Fatalf("exit %d after %v\n%s", code, took, logs)
	}
}
