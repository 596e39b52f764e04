package engineio

import (
	"sync"
	"time"
)

// heartbeats holds every session's heartbeat deadline (the next ping, or
// the pong it waits for) on one timing wheel served by one goroutine,
// instead of a runtime timer per session: ~140 B less per connection for
// its whole life, and no timer-heap operation per ping and pong. A
// deadline fires at most one tick late, never early; a tick is a
// sixteenth of the shorter of PingInterval and PingTimeout, and at most
// 250 ms (a reload may give new sessions shorter values than the wheel
// was made for), so a ping leaves at most that late, well inside the
// client's pingInterval + pingTimeout.
//
// Locks: mu guards slots, next and every session's hb fields; it is taken
// under Session.mu (schedule, cancel), and no Session.mu is taken under
// it: due sessions are collected under mu and handled after.
type heartbeats struct {
	tick  time.Duration
	start time.Time

	mu    sync.Mutex
	slots [][]*Session // deadline tick % len(slots)
	next  int64        // the next tick to serve
	fire  []*Session   // the loop's buffer
	done  chan struct{}
	ended chan struct{}
}

// heartbeatFanout: due sessions are handled this many per goroutine (a
// ping is a write; tens of thousands may be due in one tick).
const heartbeatFanout = 256

func newHeartbeats(interval, timeout time.Duration) *heartbeats {
	tick := max(min(interval/16, timeout/16, 250*time.Millisecond), time.Millisecond)
	h := &heartbeats{
		tick:  tick,
		start: time.Now(),
		slots: make([][]*Session, int(max(interval, timeout)/tick)+2),
		done:  make(chan struct{}),
		ended: make(chan struct{}),
	}
	go h.loop()
	return h
}

// hbState is a session's place on the wheel, guarded by heartbeats.mu.
type hbState struct {
	due  int64 // deadline tick; 0: not on the wheel
	slot int32
	idx  int32
}

// schedule (re)arms s to fire d from now. Called under s.mu. A nil
// wheel (the server closed) schedules nothing.
func (h *heartbeats) schedule(s *Session, d time.Duration) {
	if h == nil {
		return
	}
	// The first tick at or after the deadline: served no earlier.
	due := int64((time.Since(h.start) + d + h.tick - 1) / h.tick)
	h.mu.Lock()
	h.removeLocked(s)
	due = max(due, h.next, 1)
	slot := int32(due % int64(len(h.slots)))
	s.hb = hbState{due: due, slot: slot, idx: int32(len(h.slots[slot]))}
	h.slots[slot] = append(h.slots[slot], s)
	h.mu.Unlock()
}

// cancel takes s off the wheel.
func (h *heartbeats) cancel(s *Session) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.removeLocked(s)
	h.mu.Unlock()
}

func (h *heartbeats) removeLocked(s *Session) {
	if s.hb.due == 0 {
		return
	}
	sl := h.slots[s.hb.slot]
	last := sl[len(sl)-1]
	sl[s.hb.idx] = last
	last.hb.idx = s.hb.idx
	sl[len(sl)-1] = nil
	h.slots[s.hb.slot] = sl[:len(sl)-1]
	s.hb = hbState{}
}

func (h *heartbeats) loop() {
	defer close(h.ended)
	t := time.NewTicker(h.tick)
	defer t.Stop()
	for {
		select {
		case <-h.done:
			return
		case <-t.C:
		}
		now := int64(time.Since(h.start) / h.tick)
		h.mu.Lock()
		for ; h.next <= now; h.next++ {
			slot := h.next % int64(len(h.slots))
			sl := h.slots[slot]
			for i := 0; i < len(sl); {
				s := sl[i]
				if s.hb.due > h.next { // a later lap
					i++
					continue
				}
				h.fire = append(h.fire, s)
				h.removeLocked(s)
				sl = h.slots[slot]
			}
		}
		fire := h.fire
		h.fire = nil
		h.mu.Unlock()
		for len(fire) > 0 {
			n := min(len(fire), heartbeatFanout)
			go func(batch []*Session) {
				for _, s := range batch {
					s.onHeartbeat()
				}
			}(fire[:n])
			fire = fire[n:]
		}
	}
}

// close stops the loop; sessions still on the wheel get no more
// heartbeats (the server is closing them).
func (h *heartbeats) close() {
	close(h.done)
	<-h.ended
}
