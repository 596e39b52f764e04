package lifecycle

import (
	"context"
	"sync"
	"testing"
	"time"
)

type conn struct {
	mu *sync.Mutex
	at *[]time.Duration
	t0 time.Time
}

func (c conn) Close(string) {
	c.mu.Lock()
	*c.at = append(*c.at, time.Since(c.t0))
	c.mu.Unlock()
}

func TestPacedCloseSpreadsOverWindow(t *testing.T) {
	var mu sync.Mutex
	var at []time.Duration
	t0 := time.Now()
	conns := make([]Closer, 200)
	for i := range conns {
		conns[i] = conn{&mu, &at, t0}
	}
	window := 400 * time.Millisecond
	PacedClose(context.Background(), conns, window, "server shutting down")
	if len(at) != 200 {
		t.Fatalf("closed %d of 200", len(at))
	}
	// Spread: a quarter of the window holds neither almost all nor almost none.
	early := 0
	for _, d := range at {
		if d < window/4 {
			early++
		}
		if d > window+100*time.Millisecond {
			t.Fatalf("closed at %v, after the window", d)
		}
	}
	if early < 20 || early > 90 {
		t.Fatalf("%d of 200 closed in the first quarter: not spread", early)
	}
}

func TestPacedCloseDeadlineClosesTheRest(t *testing.T) {
	var mu sync.Mutex
	var at []time.Duration
	conns := make([]Closer, 50)
	for i := range conns {
		conns[i] = conn{&mu, &at, time.Now()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	PacedClose(ctx, conns, time.Hour, "x")
	if len(at) != 50 || time.Since(start) > time.Second {
		t.Fatalf("closed %d in %v", len(at), time.Since(start))
	}
}
