package engineio

import (
	"testing"
	"time"
)

// TestHeartbeatWheel: deadlines fire once, never early and at most about
// a tick late; a cancelled or rescheduled one does not fire at its old
// time; sessions leave the wheel when they fire.
func TestHeartbeatWheel(t *testing.T) {
	h := newHeartbeats(160*time.Millisecond, 160*time.Millisecond) // 10 ms ticks
	defer h.close()
	srv := &Server{}
	mk := func() *Session { return &Session{srv: srv, closed: true} } // closed: onHeartbeat does nothing
	// Direct checks of the wheel, without onHeartbeat's effects.
	a, b, c := mk(), mk(), mk()
	t0 := time.Now()
	h.schedule(a, 50*time.Millisecond)
	h.schedule(b, 50*time.Millisecond)
	h.schedule(c, 50*time.Millisecond)
	h.cancel(b)
	h.schedule(c, 120*time.Millisecond) // moved later
	// a fires at ~50 ms: gone from the wheel then, b never was after cancel.
	deadline := time.Now().Add(time.Second)
	for {
		h.mu.Lock()
		ad, bd, cd := a.hb.due, b.hb.due, c.hb.due
		h.mu.Unlock()
		if bd != 0 {
			t.Fatal("a cancelled session is on the wheel")
		}
		if ad == 0 {
			if el := time.Since(t0); el < 50*time.Millisecond || el > 200*time.Millisecond {
				t.Fatalf("a fired after %v, want 50 ms (at most a few ticks late)", el)
			}
			if cd == 0 {
				t.Fatal("c fired at its old deadline")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a never fired")
		}
		time.Sleep(2 * time.Millisecond)
	}
	for {
		h.mu.Lock()
		cd := c.hb.due
		h.mu.Unlock()
		if cd == 0 {
			if el := time.Since(t0); el < 120*time.Millisecond {
				t.Fatalf("c fired after %v, before its 120 ms", el)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("c never fired")
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Many sessions on one slot: all leave the wheel.
	ss := make([]*Session, 1000)
	for i := range ss {
		ss[i] = mk()
		h.schedule(ss[i], 20*time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, sl := range h.slots {
		if len(sl) != 0 {
			t.Fatalf("slot %d still holds %d sessions", i, len(sl))
		}
	}
}

// TestHeartbeatNilWheel: a closed server's nil wheel schedules nothing.
func TestHeartbeatNilWheel(t *testing.T) {
	var h *heartbeats
	s := &Session{}
	h.schedule(s, time.Second)
	h.cancel(s)
	if s.hb.due != 0 {
		t.Fatal("scheduled on a nil wheel")
	}
}
