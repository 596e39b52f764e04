package server

import (
	"context"
	"time"

	"github.com/socketfleet/socketfleet/core/config"
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
func (s *Server) recoverThrough(l *pluginhost.Link, rec *config.Recovery) {
	s.recoveryMem = nil
	s.SocketIO.SetRecovery(&socketio.Recovery{MaxDisconnection: rec.MaxDisconnection, Store: l, Echo: true, Live: true,
		RestoreTimeout: l.CallTimeout(), JournalAge: fleetJournalAge, JournalEntries: fleetJournalEntries, JournalBytes: fleetJournalBytes})
	l.SetSessionSnapshot(s.liveSessions)
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
