// Connection state recovery across instances: what an adapter provides so
// that a client that lost its connection gets its socket back (same id,
// rooms and data) on any instance, with the broadcasts it missed, as
// Socket.IO's connectionStateRecovery does.

package sdk

import (
	"context"
	"errors"
	"time"
)

// Session is one socket's recoverable state.
type Session struct {
	Namespace string
	ID        string   // the socket id the client gets back
	PID       string   // the private session id the client presents
	Rooms     []string // the rooms it is in, its own id included
	Data      []byte   // the socket's data as JSON ("null" when none)
	User      string   // the user id auth established ("" when none; Node's sessions carry none)
	// Offset is the newest broadcast offset this instance had delivered when
	// the socket connected: a client that received no broadcast presents no
	// offset, and recovers from this one instead.
	Offset string
}

// SessionState is what a SessionChange says about a session.
type SessionState int32

const (
	// SessionLive: the socket is connected to this instance. The adapter
	// keeps the session while this instance runs (refreshing it), so that
	// its clients recover elsewhere if the instance dies, and lets it expire
	// MaxDisconnection after the instance stops refreshing it.
	SessionLive SessionState = 1
	// SessionSaved: the socket disconnected for a reason that allows
	// recovery. The adapter keeps it for MaxDisconnection.
	SessionSaved SessionState = 2
	// SessionEnded: the socket is gone for good (e.g. the client left the
	// namespace); the adapter deletes it.
	SessionEnded SessionState = 3
)

// SessionChange is one session written, refreshed or deleted.
type SessionChange struct {
	State   SessionState
	Session Session
}

// RecoveryConfig is what the core asks of a SessionStore.
type RecoveryConfig struct {
	// MaxDisconnection is how long a saved session stays recoverable.
	MaxDisconnection time.Duration
	// Resume, after a restart of the plugin, maps each namespace to the
	// newest offset this instance delivered: the adapter reads on from
	// there, not from what is newest now, so that what was added while it
	// was down is delivered too. Empty at the first call.
	Resume map[string]string
}

// RestoredSession is a session taken back, with what its socket missed.
type RestoredSession struct {
	Session
	// Missed are the broadcasts to the session's rooms after the client's
	// offset, oldest first, each with its Offset set.
	Missed []AdapterMessage
}

// ErrNoSession is returned by RestoreSession when the session is unknown,
// expired, or its offset is no longer available: the client gets a new
// session.
var ErrNoSession = errors.New("no recoverable session")

// SessionStore is implemented by adapters that back connection state
// recovery across instances (Redis streams in the built-in plugin).
//
// Once EnableRecovery succeeded, the adapter delivers every broadcast that
// is not Volatile through Subscribe, this instance's own included, with
// AdapterMessage.Offset set, in one order per namespace (the order of the
// offsets); the core then delivers its own broadcasts when they come back
// rather than at once, so that every client sees one order and its last
// offset says exactly what it has seen.
type SessionStore interface {
	// EnableRecovery is called after Configure (and after every restart of
	// the plugin) when config.hcl has a recovery block. An error (e.g. "this
	// mode cannot recover sessions") is shown at that block by validate and
	// at startup.
	EnableRecovery(ctx context.Context, cfg RecoveryConfig) error
	// SaveSessions applies a batch of changes, in order. The core batches
	// them (connects, joins, disconnects); the adapter should write a batch
	// in one round trip.
	SaveSessions(ctx context.Context, changes []SessionChange) error
	// RestoreSession takes (removes) the session pid of namespace and the
	// broadcasts it missed after offset (the client's last offset, or the
	// session's Offset when the client had none: offset is then ""). It
	// returns ErrNoSession when the session or the offset is not available.
	RestoreSession(ctx context.Context, namespace, pid, offset string) (*RestoredSession, error)
}
