package server

import (
	"context"
	"time"

	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/core/recovery"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/core/socketio"
	"github.com/socketfleet/socketfleet/sdk"
)

// In a fleet the journal only bridges the moment between the adapter's
// answer to a restore and the socket's rejoining its rooms.
const (
	fleetJournalAge     = 30 * time.Second
	fleetJournalEntries = 20000
	fleetJournalBytes   = 32 << 20
)

// memoryStore is a single instance's session store: sessions in memory,
// missed broadcasts from each namespace's journal (read by the socketio
// layer once the socket is back in its rooms).
type memoryStore struct {
	m   *recovery.Memory
	sio *socketio.Server
}

func (ms memoryStore) Save(c sdk.SessionChange) { ms.m.Save(c) }

func (ms memoryStore) Restore(_ context.Context, ns, pid, offset string) (*sdk.RestoredSession, error) {
	n := ms.sio.Namespace(ns)
	if n == nil || n.Journal() == nil {
		return nil, sdk.ErrNoSession
	}
	return ms.m.Restore(n.Journal(), ns, pid, offset)
}

// recoverThrough makes the adapter plugin keep sessions (alive ones too,
// so that a crash of this instance loses none) and number broadcasts.
func (s *Server) recoverThrough(l *pluginhost.Link) {
	s.recoveryMem = nil
	s.SocketIO.SetRecovery(&socketio.Recovery{Store: l, Echo: true, Live: true,
		RestoreTimeout: l.CallTimeout(), JournalAge: fleetJournalAge, JournalEntries: fleetJournalEntries, JournalBytes: fleetJournalBytes})
	l.SetSessionSnapshot(s.liveSessions)
	l.SetResume(s.resumeOffsets)
}

// resumeOffsets maps each namespace to the newest offset delivered here.
func (s *Server) resumeOffsets() map[string]string {
	out := map[string]string{}
	for _, ns := range s.SocketIO.Namespaces() {
		if j := ns.Journal(); j != nil {
			if o := j.Newest(); o != "" {
				out[ns.Name()] = o
			}
		}
	}
	return out
}

// liveSessions lists every connected socket's session, for an adapter
// plugin that restarted.
func (s *Server) liveSessions() []sdk.SessionChange {
	var out []sdk.SessionChange
	for _, ns := range s.SocketIO.Namespaces() {
		for _, sk := range ns.LocalSockets(rooms.Options{}) {
			if ss, ok := sk.Session(); ok {
				out = append(out, sdk.SessionChange{State: sdk.SessionLive, Session: ss})
			}
		}
	}
	return out
}

// recoveryMetrics adds connection state recovery's series.
func (s *Server) recoveryMetrics(gauge, counter func(name, help string, v float64, kv ...string)) {
	rs := &s.SocketIO.Stats.Recovery
	const restores = "Reconnecting sockets that presented a session, by result: recovered, not_found (unknown, expired or offset gone: a new session), error (the store failed: a new session), collision (its old socket was still connected here: a new session)."
	counter("socket_recovery_total", restores, float64(rs.Recovered.Load()), "result", "recovered")
	counter("socket_recovery_total", restores, float64(rs.NotFound.Load()), "result", "not_found")
	counter("socket_recovery_total", restores, float64(rs.Errors.Load()), "result", "error")
	counter("socket_recovery_total", restores, float64(rs.Collisions.Load()), "result", "collision")
	counter("socket_recovery_replayed_packets_total", "Missed packets sent to recovered sockets.", float64(rs.Replayed.Load()))
	counter("socket_recovery_overflows_total", "Recovering sockets closed because live traffic outran the hold (they recover again).", float64(rs.Overflows.Load()))
	var entries, evicted int64
	var bytes int64
	for _, ns := range s.SocketIO.Namespaces() {
		if j := ns.Journal(); j != nil {
			n, b := j.Stats()
			entries += int64(n)
			bytes += b
			evicted += j.Evicted.Load()
		}
	}
	gauge("socket_recovery_buffer_entries", "Broadcasts the replay buffer (journal) holds.", float64(entries))
	gauge("socket_recovery_buffer_bytes", "Bytes the replay buffer (journal) holds.", float64(bytes))
	counter("socket_recovery_buffer_evicted_total", "Broadcasts dropped from the replay buffer by its size caps before max_disconnection: a client away longer than the buffer reaches gets a new session.", float64(evicted))
	if m := s.recoveryMem; m != nil {
		gauge("socket_recovery_sessions_saved", "Disconnected sessions kept in memory.", float64(m.Len()))
		counter("socket_recovery_sessions_refused_total", "Sessions not kept: the in-memory store was full.", float64(m.Refused.Load()))
	}
	if ps := s.plugins.Load(); ps != nil && ps.link != nil {
		st := ps.link.SessionStats()
		counter("socket_recovery_session_writes_total", "Session changes handed to the adapter plugin.", float64(st.Saved))
		counter("socket_recovery_session_writes_dropped_total", "Session changes dropped (queue full, or the plugin failed them 3 times).", float64(st.Dropped))
	}
}
