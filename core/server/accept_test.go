package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
)

// acceptChildEnv makes this test binary serve one instance with only 64
// descriptors instead of running tests: the descriptor limit is per
// process, so the exhaustion must happen in a process of its own.
const acceptChildEnv = "SF_TEST_ACCEPT_CHILD"

func serveWithFewDescriptors() {
	lim := syscall.Rlimit{Cur: 64, Max: 64}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		panic(err)
	}
	cfg, diags := config.Parse([]byte(`namespace "/" {}`), "test.hcl")
	if diags.HasErrors() {
		panic(diags.Error())
	}
	log := logrus.New()
	log.SetOutput(os.Stderr)
	s := New(cfg, logrus.NewEntry(log), "test")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	os.Stdout.WriteString("ADDR " + l.Addr().String() + "\n")
	err = s.Serve(context.Background(), l)
	os.Stderr.WriteString("Serve returned: " + err.Error() + "\n")
	os.Exit(3)
}

// Running out of descriptors must not stop the listener for good: once the
// connections that used them up are gone, the instance serves again, says
// what happened in /ready meanwhile and counts it in /health.
func TestAcceptSurvivesDescriptorExhaustion(t *testing.T) {
	if os.Getenv(acceptChildEnv) == "1" {
		serveWithFewDescriptors()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptSurvivesDescriptorExhaustion$")
	cmd.Env = append(os.Environ(), acceptChildEnv+"=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		t.Fatalf("child did not start: %q %v", line, err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))

	// More connections than the child has descriptors: the kernel completes
	// them all (backlog), the child's accept runs out.
	var held []net.Conn
	for range 100 {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		held = append(held, c)
	}
	time.Sleep(300 * time.Millisecond) // let accept hit the limit
	for _, c := range held {
		c.Close()
	}

	client := &http.Client{Timeout: 2 * time.Second}
	get := func(path string) (int, string) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(5 * time.Second)
	code, body := get("/health")
	for code != http.StatusOK && time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("the instance exited after running out of descriptors:\n%s", stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		code, body = get("/health")
	}
	if code != http.StatusOK {
		t.Fatalf("/health after the connections closed: %d %s\nchild log:\n%s", code, body, stderr.String())
	}
	var h struct {
		AcceptErrors uint64 `json:"accept_errors"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil || h.AcceptErrors == 0 {
		t.Fatalf("/health does not count the failed accepts: %s (%v)", body, err)
	}
	if code, body := get("/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "too many open files") {
		t.Errorf("/ready right after the exhaustion: %d %s, want 503 naming the error", code, body)
	}

	// A client can connect again.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatalf("WebSocket after the exhaustion: %v", err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(msg), `0{"sid"`) {
		t.Fatalf("open packet: %q %v", msg, err)
	}

	// And readiness comes back by itself.
	deadline = time.Now().Add(acceptUnreadyFor + 3*time.Second)
	for {
		code, body := get("/ready")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready still %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
