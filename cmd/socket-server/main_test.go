package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

// buildBinary compiles the command once per test process.
func buildBinary(t testing.TB) string {
	t.Helper()
	return testkit.Build(t, "./cmd/socket-server", "-ldflags", "-X main.version=9.9.9-test")
}

func TestVersionAndValidate(t *testing.T) {
	bin := buildBinary(t)
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "socket-server 9.9.9-test (plugin protocol ") {
		t.Fatalf("version: %q %v", out, err)
	}
	for _, cfg := range []string{"../../config.hcl", "../../examples/conformance/config.hcl"} {
		out, err := exec.Command(bin, "validate", "--config", cfg).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "config OK") {
			t.Fatalf("validate %s: %v\n%s", cfg, err, out)
		}
	}

	bad := filepath.Join(t.TempDir(), "bad.hcl")
	src := "server {\n  ping_interval = \"soon\"\n  colour = \"blue\"\n}\n"
	if err := os.WriteFile(bad, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "validate", "--config", bad)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("validate bad config: want exit 1, got %v", err)
	}
	msg := stderr.String()
	for _, want := range []string{bad + ":2:19", bad + ":3:3", `colour = "blue"`, "soon"} {
		if !strings.Contains(msg, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, msg)
		}
	}
}

// TestConformanceProfile runs the binary with examples/conformance/config.hcl
// and checks the behaviours the public Engine.IO and Socket.IO suites rely on.
func TestConformanceProfile(t *testing.T) {
	bin := buildBinary(t)
	addr := testkit.FreeAddr(t)
	srv := testkit.Start(t, testkit.Command(bin, []string{"LISTEN_ADDR=" + addr}, "run", "--config", "../../examples/conformance/config.hcl"))
	defer func() {
		_ = srv.Signal(syscall.SIGTERM)
		if !srv.Wait(10 * time.Second) {
			t.Error("server did not stop on SIGTERM")
		} else if err := srv.Err(); err != nil {
			t.Errorf("server exit after SIGTERM: %v", err)
		}
	}()
	base := "http://" + addr
	testkit.WaitHTTP(t, 10*time.Second, base+"/socket.io/?EIO=4&transport=polling")

	t.Run("engine.io echo over polling", func(t *testing.T) {
		open := httpGet(t, base+"/engine.io/?EIO=4&transport=polling")
		if !strings.Contains(open, `"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}`) {
			t.Fatalf("open %q", open)
		}
		url := base + "/engine.io/?EIO=4&transport=polling&sid=" + sidOf(t, open)
		httpPost(t, url, "4hello\x1e4€\x1ebAQIDBA==")
		if got := httpGet(t, url); got != "4hello\x1e4€\x1ebAQIDBA==" {
			t.Fatalf("echo %q", got)
		}
	})
	t.Run("engine.io echo over websocket", func(t *testing.T) {
		c := dial(t, "ws://"+addr+"/engine.io/?EIO=4&transport=websocket")
		if open := read(t, c); !strings.Contains(open, `"upgrades":[]`) {
			t.Fatalf("open %q", open)
		}
		_ = c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3, 4})
		if got := read(t, c); got != "\x01\x02\x03\x04" {
			t.Fatalf("binary echo %q", got)
		}
	})
	t.Run("heartbeat at 300ms", func(t *testing.T) {
		c := dial(t, "ws://"+addr+"/engine.io/?EIO=4&transport=websocket")
		read(t, c)
		start := time.Now()
		if got := read(t, c); got != "2" {
			t.Fatalf("want ping, got %q", got)
		}
		if d := time.Since(start); d < 250*time.Millisecond || d > 1000*time.Millisecond {
			t.Fatalf("ping after %v", d)
		}
		// No pong: closed after pingTimeout.
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := c.ReadMessage(); err == nil {
			t.Fatal("still open without pong")
		}
	})
	t.Run("socket.io auth, message-back, ack, /custom", func(t *testing.T) {
		c := dial(t, "ws://"+addr+"/socket.io/?EIO=4&transport=websocket")
		read(t, c)
		_ = c.WriteMessage(websocket.TextMessage, []byte(`40{"token":"123"}`))
		if got := read(t, c); !strings.HasPrefix(got, `40{"sid":"`) {
			t.Fatalf("connect %q", got)
		}
		if got := read(t, c); got != `42["auth",{"token":"123"}]` {
			t.Fatalf("auth %q", got)
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(`42["message",1,"2",{"3":[true]}]`))
		if got := read(t, c); got != `42["message-back",1,"2",{"3":[true]}]` {
			t.Fatalf("message-back %q", got)
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(`42456["message-with-ack",1,"2",{"3":[false]}]`))
		if got := read(t, c); got != `43456[1,"2",{"3":[false]}]` {
			t.Fatalf("ack %q", got)
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(`40/custom,`))
		if got := read(t, c); !strings.HasPrefix(got, `40/custom,{"sid":"`) {
			t.Fatalf("connect /custom %q", got)
		}
		if got := read(t, c); got != `42/custom,["auth",{}]` {
			t.Fatalf("auth /custom %q", got)
		}
	})
	t.Run("connect timeout 1s", func(t *testing.T) {
		c := dial(t, "ws://"+addr+"/socket.io/?EIO=4&transport=websocket")
		read(t, c)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				break
			}
			if string(b) == "2" {
				_ = c.WriteMessage(websocket.TextMessage, []byte("3"))
			}
		}
		if d := time.Since(start); d < 900*time.Millisecond || d > 2500*time.Millisecond {
			t.Fatalf("closed after %v, want ~1s", d)
		}
	})
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func httpPost(t *testing.T, url, body string) {
	t.Helper()
	res, err := http.Post(url, "text/plain;charset=UTF-8", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("POST: %d %q", res.StatusCode, b)
	}
}

func sidOf(t *testing.T, open string) string {
	t.Helper()
	i := strings.Index(open, `"sid":"`)
	if i < 0 {
		t.Fatalf("no sid in %q", open)
	}
	return open[i+7 : i+27]
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var read = testkit.ReadWS
