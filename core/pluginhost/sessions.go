package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

// Session changes wait in a bounded queue and cross in batches, like
// broadcasts: a connect or a join is never one call of its own.
const (
	sessionQueue  = 65536
	sessionBatch  = 1024
	sessionLinger = 2 * time.Millisecond
)

// sessionState is the part of a Link that backs connection state recovery.
type sessionState struct {
	out      *batcher[sdk.SessionChange]
	snapshot atomic.Pointer[func() []sdk.SessionChange]
	resume   atomic.Pointer[func() map[string]string]
}

// EnableRecovery asks the adapter plugin to back connection state recovery
// (sdk.SessionStore), now and after every restart of its process; after a
// restart the live sessions (SetSessionSnapshot) are written again, since
// the new process does not know to keep them. The error says why the
// plugin cannot (wrapping sdk.ErrUnsupported when it lacks the interface).
func (l *Link) EnableRecovery(ctx context.Context, cfg sdk.RecoveryConfig) error {
	enable := func(ctx context.Context, raw sdk.Plugin, cfg sdk.RecoveryConfig) error {
		st, err := sessionStoreOf(raw)
		if err != nil {
			return err
		}
		return st.EnableRecovery(ctx, cfg)
	}
	if err := l.p.call(ctx, "EnableRecovery", func(ctx context.Context, raw sdk.Plugin) error {
		return enable(ctx, raw, cfg)
	}); err != nil {
		if errors.Is(err, sdk.ErrUnsupported) {
			return fmt.Errorf("the adapter plugin cannot recover sessions across instances (it does not implement sdk.SessionStore): %w", sdk.ErrUnsupported)
		}
		return err
	}
	l.ss.out = newBatcher(l.p, "session changes", sessionQueue, sessionBatch, sessionLinger,
		func(ctx context.Context, batch []sdk.SessionChange) error {
			return l.p.call(ctx, "SaveSessions", func(ctx context.Context, raw sdk.Plugin) error {
				st, err := sessionStoreOf(raw)
				if err != nil {
					return err
				}
				return st.SaveSessions(ctx, batch)
			})
		})
	l.ss.out.eager = true
	l.ss.out.start()
	l.p.afterRestart(func(ctx context.Context, raw sdk.Plugin) error {
		again := cfg
		if f := l.ss.resume.Load(); f != nil {
			again.Resume = (*f)()
		}
		if err := enable(ctx, raw, again); err != nil {
			return err
		}
		if f := l.ss.snapshot.Load(); f != nil {
			for _, c := range (*f)() {
				l.ss.out.add(c)
			}
		}
		return nil
	})
	return nil
}

// SetSessionSnapshot sets what is written again after a plugin restart:
// every connected socket's session, as SessionLive.
func (l *Link) SetSessionSnapshot(snapshot func() []sdk.SessionChange) {
	l.ss.snapshot.Store(&snapshot)
}

// SetResume sets where a restarted plugin reads on from: each namespace's
// newest offset delivered here.
func (l *Link) SetResume(resume func() map[string]string) {
	l.ss.resume.Store(&resume)
}

// Save queues a session change. It never blocks; a full queue drops the
// change and counts it (SessionStats).
func (l *Link) Save(c sdk.SessionChange) {
	if l.ss.out != nil {
		l.ss.out.add(c)
	}
}

// Restore asks the adapter plugin for a session and what it missed.
func (l *Link) Restore(ctx context.Context, ns, pid, offset string) (*sdk.RestoredSession, error) {
	var rs *sdk.RestoredSession
	err := l.p.call(ctx, "RestoreSession", func(ctx context.Context, raw sdk.Plugin) error {
		st, err := sessionStoreOf(raw)
		if err != nil {
			return err
		}
		rs, err = st.RestoreSession(ctx, ns, pid, offset)
		return err
	})
	return rs, err
}

// SessionStats are the counters of the session queue.
type SessionStats struct {
	Saved, Dropped uint64
	Queued         int
}

// SessionStats returns the session queue's counters (zero when recovery
// is off).
func (l *Link) SessionStats() SessionStats {
	if l.ss.out == nil {
		return SessionStats{}
	}
	return SessionStats{Saved: l.ss.out.sent.Load(), Dropped: l.ss.out.dropped.Load(), Queued: l.ss.out.queued()}
}

// CallTimeout is the plugin's per-call timeout.
func (l *Link) CallTimeout() time.Duration { return l.p.spec.CallTimeout }

// sessionStoreOf is the plugin's SessionStore (the gRPC client always has
// one; a plugin without it answers ErrUnsupported).
func sessionStoreOf(raw sdk.Plugin) (sdk.SessionStore, error) {
	st, ok := raw.(sdk.SessionStore)
	if !ok {
		return nil, sdk.ErrUnsupported
	}
	return st, nil
}
