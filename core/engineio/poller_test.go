package engineio

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Idle WebSocket sessions hold no goroutine: their sockets wait in the
// poller, which wakes them for data (an echo), for a peer's close, and
// never for a socket number reused after the session ended.
func TestIdleReadersAreParked(t *testing.T) {
	if !rawWrites {
		t.Skip("no poller on this platform")
	}
	ts, h := newTestServer(t, Options{})
	before := runtime.NumGoroutine()
	const n = 30 // half of it closes: within the echo handler's 16 buffered close reports
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dialWS(t, ts)
		_ = conns[i].WriteMessage(websocket.TextMessage, []byte(fmt.Sprint("4first", i)))
		if got := readText(t, conns[i]); got != fmt.Sprint("4first", i) {
			t.Fatalf("echo %q", got)
		}
	}
	// gorilla clients hold no goroutine: only the server's would count.
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before+5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine() - before; g > 5 {
		t.Fatalf("%d idle sessions hold %d goroutines", n, g)
	}
	// Woken for data, in order, many times.
	for round := 0; round < 3; round++ {
		for i, c := range conns {
			want := fmt.Sprint("4r", round, "c", i)
			_ = c.WriteMessage(websocket.TextMessage, []byte(want))
			if got := readText(t, c); got != want {
				t.Fatalf("round %d conn %d: echo %q", round, i, got)
			}
		}
	}
	// Half the clients go away: their parked sessions are woken and close.
	for _, c := range conns[:n/2] {
		c.Close()
	}
	for i := 0; i < n/2; i++ {
		if reason := waitClose(t, h); reason != ReasonTransportClose {
			t.Fatalf("close reason %q", reason)
		}
	}
	// New connections reuse the socket numbers; everyone still works.
	for i := 0; i < n/2; i++ {
		conns[i] = dialWS(t, ts)
	}
	for i, c := range conns {
		want := fmt.Sprint("4again", i)
		_ = c.WriteMessage(websocket.TextMessage, []byte(want))
		if got := readText(t, c); got != want {
			t.Fatalf("conn %d after reuse: echo %q", i, got)
		}
	}
	select {
	case reason := <-h.done:
		t.Fatalf("a live session closed: %s", reason)
	default:
	}
}
