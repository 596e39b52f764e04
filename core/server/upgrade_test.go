package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// serveUpgradeListener runs an http.Server behind an upgradeListener with
// handler h and returns its address.
func serveUpgradeListener(t *testing.T, h http.Handler, timeout time.Duration) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ul := newUpgradeListener(l, h, logrus.NewEntry(log), timeout, new(acceptHealth))
	hs := &http.Server{Handler: h, ReadHeaderTimeout: timeout}
	go func() { _ = hs.Serve(ul) }()
	t.Cleanup(func() { _ = hs.Close() })
	return l.Addr().String()
}

// rawRequest sends raw on a new connection and returns the response (all
// the server writes until it closes, or 2 s).
func rawRequest(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

const wsHead = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

// Handshakes served off net/http: the handler sees the request as net/http
// would give it, hijacks, and owns the connection; refusals are written as
// plain responses; other requests still reach net/http, bytes intact.
func TestUpgradeListener(t *testing.T) {
	var viaFast = make(chan bool, 16)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, fast := w.(*upgradeWriter)
		viaFast <- fast
		switch r.URL.Path {
		case "/ws":
			if r.Header.Get("Sec-WebSocket-Key") == "" || r.URL.Query().Get("a") != "1" || r.RemoteAddr == "" {
				http.Error(w, "unexpected request "+r.URL.String(), http.StatusTeapot)
				return
			}
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil || brw != nil { // no buffers: engineio reads and writes the conn itself
				t.Errorf("hijack: %v, buffers %v", err, brw)
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\n\r\nhello")
			c.Close()
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		default:
			http.Error(w, "refused", http.StatusForbidden)
		}
	})
	addr := serveUpgradeListener(t, h, time.Second)

	if got := rawRequest(t, addr, strings.Replace(wsHead, "/ws", "/ws?a=1", 1)+"\r\n"); got != "HTTP/1.1 101 Switching Protocols\r\n\r\nhello" {
		t.Fatalf("hijacked handshake answered %q", got)
	}
	if !<-viaFast {
		t.Fatal("the WebSocket handshake went through net/http")
	}

	got := rawRequest(t, addr, strings.Replace(wsHead, "/ws", "/other", 1)+"\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 403 Forbidden\r\n") || !strings.Contains(got, "Connection: close\r\n") ||
		!strings.Contains(got, "Content-Length: 8\r\n") || !strings.HasSuffix(got, "\r\n\r\nrefused\n") {
		t.Fatalf("refused handshake answered %q", got)
	}
	<-viaFast

	// Bytes sent before the 101: refused, handler not called.
	if got := rawRequest(t, addr, wsHead+"\r\nearly"); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Fatalf("early data answered %q", got)
	}
	// No Host header in HTTP/1.1: refused.
	if got := rawRequest(t, addr, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Fatalf("missing Host answered %q", got)
	}

	// Plain requests (a POST with a body, two pipelined) reach net/http.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
	_, _ = io.WriteString(c, req+strings.Replace(req, "first", "again", 1))
	br := bufio.NewReader(c)
	for _, want := range []string{"first", "again"} {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || string(b) != want {
			t.Fatalf("pipelined POST: %d %q, want %q", res.StatusCode, b, want)
		}
		if <-viaFast {
			t.Fatal("a plain request went the WebSocket way")
		}
	}
	select {
	case <-viaFast:
		t.Fatal("the handler ran for a refused request")
	default:
	}
}

// A connection that sends nothing, or half a head, is closed after the
// head timeout.
func TestUpgradeListenerHeadTimeout(t *testing.T) {
	addr := serveUpgradeListener(t, http.NotFoundHandler(), 200*time.Millisecond)
	for _, partial := range []string{"", "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, partial)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, _ = io.ReadAll(c)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("partial head %q: connection open after %v", partial, d)
		}
		c.Close()
	}
}

// A connection whose request head does not arrive in time is closed after
// one head timeout, not two (the listener's peek, then net/http's own).
func TestSlowHeadClosedAfterOneTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	addr := serveUpgradeListener(t, http.NotFoundHandler(), timeout)
	for _, sent := range []string{"", "GET /socket.io/ HTTP/1.1\r\nHost: x\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, _ = io.WriteString(c, sent)
		_ = c.SetReadDeadline(time.Now().Add(5 * timeout))
		_, err = io.ReadAll(c)
		took := time.Since(start)
		c.Close()
		if err != nil {
			t.Fatalf("after sending %q: still open after %v: %v", sent, 5*timeout, err)
		}
		if took >= 2*timeout {
			t.Errorf("after sending %q: closed after %v, want about %v (one head timeout)", sent, took.Round(time.Millisecond), timeout)
		}
	}
}
