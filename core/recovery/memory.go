package recovery

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

// DefaultMaxSessions bounds the saved sessions of a Memory store: past it,
// a disconnecting socket's session is not saved (counted in Refused).
const DefaultMaxSessions = 200000

// Memory keeps the sessions of disconnected sockets in this process, for a
// single instance: a client whose network blinked recovers here, with the
// broadcasts its journal still holds.
type Memory struct {
	MaxAge      time.Duration
	MaxSessions int

	mu        sync.Mutex
	sessions  map[string]saved // by namespace + "\x00" + pid
	lastSweep time.Time

	Refused atomic.Int64 // sessions not saved: the store was full
}

type saved struct {
	s  sdk.Session
	at time.Time
}

// NewMemory returns an empty store.
func NewMemory(maxAge time.Duration) *Memory {
	return &Memory{MaxAge: maxAge, MaxSessions: DefaultMaxSessions, sessions: make(map[string]saved)}
}

func key(ns, pid string) string { return ns + "\x00" + pid }

// Save applies one change. Live sessions need nothing here: a process
// that dies takes its sockets and its memory with it.
func (m *Memory) Save(c sdk.SessionChange) {
	k := key(c.Session.Namespace, c.Session.PID)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch c.State {
	case sdk.SessionSaved:
		now := time.Now()
		if now.Sub(m.lastSweep) > m.MaxAge/4 {
			m.sweepLocked(now)
		}
		if len(m.sessions) >= m.MaxSessions {
			m.Refused.Add(1)
			return
		}
		m.sessions[k] = saved{s: c.Session, at: now}
	case sdk.SessionEnded:
		delete(m.sessions, k)
	}
}

func (m *Memory) sweepLocked(now time.Time) {
	m.lastSweep = now
	for k, s := range m.sessions {
		if now.Sub(s.at) > m.MaxAge {
			delete(m.sessions, k)
		}
	}
}

// Restore takes a saved session of namespace ns when j (that namespace's
// journal) still holds everything after offset (the session's own when
// offset is ""). Missed is left empty: the caller reads the journal
// itself, once the socket is back in its rooms.
func (m *Memory) Restore(j *Journal, ns, pid, offset string) (*sdk.RestoredSession, error) {
	k := key(ns, pid)
	m.mu.Lock()
	s, ok := m.sessions[k]
	if ok {
		delete(m.sessions, k)
	}
	m.mu.Unlock()
	if !ok || time.Since(s.at) > m.MaxAge {
		return nil, sdk.ErrNoSession
	}
	if offset == "" {
		offset = s.s.Offset
	}
	if offset == "" {
		offset = "0-0" // nothing had been broadcast when it connected
	}
	off, ok := ParseOffset(offset)
	if !ok {
		return nil, sdk.ErrNoSession
	}
	if !j.Covers(off) {
		return nil, sdk.ErrNoSession
	}
	s.s.Offset = offset
	return &sdk.RestoredSession{Session: s.s}, nil
}

// Len returns the sessions held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}
