package engineio

import (
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

// TestKeepHeaders: under the budget every header not dropped is kept;
// over it the largest go first, whole, and ties go by name.
func TestKeepHeaders(t *testing.T) {
	src := http.Header{
		"Cookie":     {"a=1"},
		"User-Agent": {"x"},
		"X-Big":      {strings.Repeat("b", 100)},
		"X-Bigger":   {strings.Repeat("c", 200)},
		"Upgrade":    {"websocket"}, // dropped regardless
	}
	kept := func(budget int) (http.Header, int) {
		enc, dropped := keepHeaders(src, budget)
		return (&Handshake{headers: enc}).Header(), dropped
	}
	h, dropped := kept(1000)
	if dropped != 0 || len(h) != 4 || h.Get("Upgrade") != "" || h.Get("X-Bigger") != strings.Repeat("c", 200) {
		t.Fatalf("under the budget: %v, %d dropped", h, dropped)
	}
	h, dropped = kept(150)
	if dropped != 1 || h.Get("X-Bigger") != "" || h.Get("X-Big") == "" || h.Get("Cookie") != "a=1" {
		t.Fatalf("over the budget: %v, %d dropped", h, dropped)
	}
	if h, dropped = kept(0); dropped != 4 || len(h) != 0 {
		t.Fatalf("no budget: %v, %d dropped", h, dropped)
	}
}

// TestHandshakeHeaderValues: repeated values and empty ones survive the
// encoding, in order.
func TestHandshakeHeaderValues(t *testing.T) {
	src := http.Header{"X-Many": {"a", "", "c"}, "Empty": {""}, "Cookie": {"k=v; w=x"}}
	enc, _ := keepHeaders(src, 1000)
	h := (&Handshake{headers: enc}).Header()
	if got := h["X-Many"]; len(got) != 3 || got[0] != "a" || got[1] != "" || got[2] != "c" {
		t.Fatalf("X-Many: %q", got)
	}
	if got, ok := h["Empty"]; !ok || len(got) != 1 || got[0] != "" {
		t.Fatalf("Empty: %q, %v", got, ok)
	}
	if h.Get("Cookie") != "k=v; w=x" || len(h) != 3 {
		t.Fatalf("headers %v", h)
	}
	if h := (&Handshake{}).Header(); h == nil || len(h) != 0 {
		t.Fatalf("no headers: %v", h)
	}
}

// TestHandshakeURITooLong: a URI the session would keep beyond
// MaxHandshakeBytes is refused with 414.
func TestHandshakeURITooLong(t *testing.T) {
	ts, _ := newTestServer(t, Options{MaxHandshakeBytes: 1024})
	r := do(t, "GET", ts.URL+"/?EIO=4&transport=polling&t="+strings.Repeat("x", 1100), "", nil)
	if r.status != http.StatusRequestURITooLong {
		t.Fatalf("status %d, want 414", r.status)
	}
	if r = do(t, "GET", ts.URL+"/?EIO=4&transport=polling&t="+strings.Repeat("x", 500), "", nil); r.status != 200 {
		t.Fatalf("status %d, want 200", r.status)
	}
}

// TestReadBodyGrowsWithWhatArrives: the declared length does not size the
// buffer beyond bodyChunk, bytes arriving one at a time are all read, and
// more than the limit is refused.
func TestReadBodyGrowsWithWhatArrives(t *testing.T) {
	body := strings.Repeat("y", 3000)
	b, err := readBody(iotest.OneByteReader(strings.NewReader(body)), 1e6, 1e6)
	if err != nil || string(b) != body {
		t.Fatalf("read %d bytes, %v", len(b), err)
	}
	if b, _ := readBody(strings.NewReader("short"), 1e6, 1e6); cap(b) > bodyChunk+1 {
		t.Fatalf("a 5-byte body declared as 1 MB got a %d-byte buffer", cap(b))
	}
	if _, err := readBody(strings.NewReader(body), -1, 2999); err != errTooLarge {
		t.Fatalf("over the limit: %v", err)
	}
	if b, err := readBody(strings.NewReader(body), -1, 3000); err != nil || len(b) != 3000 {
		t.Fatalf("at the limit: %d, %v", len(b), err)
	}
}
