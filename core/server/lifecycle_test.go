package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func getJSON(t *testing.T, url string) (int, map[string]any, http.Header) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return res.StatusCode, m, res.Header
}

func TestDrainNotifiesAndClosesPaced(t *testing.T) {
	srv, ts := newTestInstance(t, `
server {
  drain {
    timeout = "600ms"
    message = "bye"
  }
}
namespace "/" {}
namespace "/admin" {}
`)
	if code, m, _ := getJSON(t, ts.URL+"/ready"); code != 200 || m["ready"] != true {
		t.Fatalf("ready before drain: %d %v", code, m)
	}
	var clients []*wsClient
	for i := 0; i < 60; i++ {
		c := dialWS(t, ts)
		c.send(`40`)
		if i == 0 {
			c.send(`40/admin,`)
		}
		clients = append(clients, c)
	}
	for i, c := range clients {
		c.read()
		if i == 0 {
			c.read()
		}
	}
	start := time.Now()
	done := make(chan struct{})
	go func() { srv.Drain(context.Background()); close(done) }()
	time.Sleep(20 * time.Millisecond)

	if code, m, _ := getJSON(t, ts.URL+"/ready"); code != 503 || m["reason"] != "draining" {
		t.Fatalf("ready while draining: %d %v", code, m)
	}
	if code, _, h := getJSON(t, ts.URL+"/socket.io/?EIO=4&transport=polling"); code != 503 || h.Get("Retry-After") == "" {
		t.Fatalf("handshake while draining: %d", code)
	}
	want := `42["server:maintenance",{"message":"bye","code":"SERVER_DRAINING"}]`
	for i, c := range clients {
		if got := c.read(); got != want {
			t.Fatalf("client %d: %q", i, got)
		}
		if i == 0 {
			if got := c.read(); got != `42/admin,["server:maintenance",{"message":"bye","code":"SERVER_DRAINING"}]` {
				t.Fatalf("admin namespace: %q", got)
			}
		}
	}
	closedAt := make(chan time.Duration, len(clients))
	for _, c := range clients {
		go func(c *wsClient) {
			_ = c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
			for {
				if _, _, err := c.c.ReadMessage(); err != nil {
					closedAt <- time.Since(start)
					return
				}
			}
		}(c)
	}
	first, last := time.Hour, time.Duration(0)
	for range clients {
		d := <-closedAt
		first, last = min(first, d), max(last, d)
	}
	if last > 2*time.Second {
		t.Fatal("clients not disconnected by the drain")
	}
	<-done
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("drain took %v, window 600ms", d)
	}
	// 60 connections at 10 ms each fill the 600 ms window: spread, not at once.
	if spread := last - first; spread < 250*time.Millisecond {
		t.Fatalf("all closed within %v: not paced", spread)
	}
	if srv.Engine.Count() != 0 {
		t.Fatalf("%d sessions left", srv.Engine.Count())
	}
}

func TestLoadSheddingRefusesNewHandshakesOnly(t *testing.T) {
	srv, ts := newTestInstance(t, strings.Replace(testConfig, "max_payload     = 1000000", `max_payload = 1000000
  load_shedding {
    max_heap    = "100GB"
    retry_after = "7s"
  }`, 1))
	c := dialWS(t, ts)
	c.send(`40`)
	c.read()
	c.read()

	srv.Memory.SetThresholdsForTest(1) // any heap is too much now
	srv.Memory.Sample()
	if !srv.Memory.Shedding() {
		t.Fatal("not shedding")
	}
	if code, _, h := getJSON(t, ts.URL+"/socket.io/?EIO=4&transport=polling"); code != 503 || h.Get("Retry-After") != "7" {
		t.Fatalf("polling handshake under pressure: %d retry-after %q", code, h.Get("Retry-After"))
	}
	_, res, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err == nil || res.StatusCode != 503 {
		t.Fatalf("websocket handshake under pressure: %v", err)
	}
	if code, m, _ := getJSON(t, ts.URL+"/ready"); code != 503 || m["reason"] != "memory pressure" {
		t.Fatalf("ready under pressure: %d %v", code, m)
	}
	// The connected socket keeps working.
	c.send(`421["message-with-ack","still"]`)
	if got := c.read(); got != `431["still"]` {
		t.Fatalf("existing socket: %q", got)
	}
	if srv.Memory.Rejected.Load() != 2 || srv.Memory.Crossings.Load() != 1 {
		t.Fatalf("rejected %d crossings %d", srv.Memory.Rejected.Load(), srv.Memory.Crossings.Load())
	}
	srv.Memory.SetThresholdsForTest(100 << 30)
	srv.Memory.Sample()
	if code, _, _ := getJSON(t, ts.URL+"/ready"); code != 200 {
		t.Fatalf("ready after pressure: %d", code)
	}
}
