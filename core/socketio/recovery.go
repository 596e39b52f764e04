package socketio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socketfleet/socketfleet/core/engineio"
	"github.com/socketfleet/socketfleet/core/protocol/siowire"
	"github.com/socketfleet/socketfleet/core/recovery"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/sdk"
)

// Recovery turns on Socket.IO's connection state recovery: the CONNECT
// reply carries a pid, every stored broadcast an offset, and a client that
// comes back with {pid, offset} gets its socket (id, rooms, data) back with
// what it missed.
type Recovery struct {
	// Store keeps the sessions: recovery.Memory on a single instance, the
	// adapter plugin (sdk.SessionStore) in a fleet.
	Store SessionStore
	// Echo: the cluster adapter delivers this instance's own broadcasts
	// back, in offset order, with their offsets (sdk.SessionStore's
	// contract); they are delivered here only then. Otherwise this
	// instance numbers its broadcasts itself.
	Echo bool
	// Live: the store keeps connected sockets' sessions too (so that they
	// survive a crash of this instance): it gets SessionLive on connect and
	// on every room change.
	Live bool
	// RestoreTimeout bounds one Restore.
	RestoreTimeout time.Duration
	// Journal bounds, per namespace: recent broadcasts kept for replay (on
	// a single instance, all of it; in a fleet, the moment between the
	// store's answer and the socket's rejoining).
	JournalAge     time.Duration
	JournalEntries int
	JournalBytes   int64
}

// SessionStore is where sessions go between a disconnect and a recovery.
type SessionStore interface {
	// Save records a change; it never blocks.
	Save(c sdk.SessionChange)
	// Restore takes a session back (sdk.SessionStore.RestoreSession).
	Restore(ctx context.Context, ns, pid, offset string) (*sdk.RestoredSession, error)
}

// RecoveryStats count recoveries.
type RecoveryStats struct {
	Recovered  atomic.Int64 // sockets that got their session back
	NotFound   atomic.Int64 // a pid was presented, no session (unknown, expired, offset gone)
	Errors     atomic.Int64 // the store failed: a new session was given
	Replayed   atomic.Int64 // packets sent as missed
	Collisions atomic.Int64 // the session's socket was still connected here: a new session was given
	Overflows  atomic.Int64 // a recovering socket got more live traffic than it could hold; closed to recover again
	// Redelivered counts broadcasts the adapter handed over again after a
	// restart (it reads on from the last offset delivered): dropped.
	Redelivered atomic.Int64
}

// SetRecovery turns recovery on. Call before serving.
func (srv *Server) SetRecovery(r *Recovery) {
	if r.RestoreTimeout <= 0 {
		r.RestoreTimeout = 2 * time.Second
	}
	srv.rec = r
	for _, n := range srv.Namespaces() {
		n.journal = recovery.NewJournal(r.JournalAge, r.JournalEntries, r.JournalBytes)
	}
}

// Recovery returns the recovery settings, nil when off.
func (srv *Server) Recovery() *Recovery { return srv.rec }

// Journal returns the namespace's broadcast journal (nil without recovery).
func (n *Namespace) Journal() *recovery.Journal { return n.journal }

// recoverable lists the disconnect reasons after which a session is kept,
// as Node does, plus a slow consumer's (it recovers what it was not sent).
func recoverable(reason string) bool {
	switch reason {
	case engineio.ReasonTransportError, engineio.ReasonTransportClose, engineio.ReasonForcedClose,
		engineio.ReasonPingTimeout, engineio.ReasonShuttingDown, engineio.ReasonSlowConsumer:
		return true
	}
	return false
}

// Recovered reports whether the socket got a previous session back.
func (s *Socket) Recovered() bool { return s.recovered }

// session describes the socket for the store; call before it leaves its rooms.
func (s *Socket) session() sdk.Session {
	return sdk.Session{Namespace: s.ns.name, ID: s.id, PID: s.pid, Rooms: s.Rooms(), Data: s.Data(), User: s.user, Offset: s.stamp}
}

// Session describes a connected socket's session; ok is false when it
// has none (recovery off, or not yet admitted).
func (s *Socket) Session() (_ sdk.Session, ok bool) {
	if s.pid == "" || !s.admitted.Load() {
		return sdk.Session{}, false
	}
	return s.session(), true
}

// saveLive tells a store that keeps live sessions about a change.
func (s *Socket) saveLive() {
	if rec := s.ns.srv.rec; rec != nil && rec.Live && s.admitted.Load() {
		rec.Store.Save(sdk.SessionChange{State: sdk.SessionLive, Session: s.session()})
	}
}

// saveOnClose keeps or forgets the session of a socket that is finishing.
func (s *Socket) saveOnClose(reason string) {
	rec := s.ns.srv.rec
	if rec == nil || !s.admitted.Load() {
		return
	}
	if recoverable(reason) && !s.noRecover.Load() {
		rec.Store.Save(sdk.SessionChange{State: sdk.SessionSaved, Session: s.session()})
	} else if rec.Live {
		rec.Store.Save(sdk.SessionChange{State: sdk.SessionEnded, Session: sdk.Session{Namespace: s.ns.name, ID: s.id, PID: s.pid}})
	}
}

// recoveryAuth reads {pid, offset} from a CONNECT payload.
func recoveryAuth(auth []byte) (pid, offset string) {
	if !bytes.Contains(auth, []byte(`"pid"`)) {
		return "", ""
	}
	var v struct {
		PID    any `json:"pid"`
		Offset any `json:"offset"`
	}
	if json.Unmarshal(auth, &v) != nil {
		return "", ""
	}
	pid, _ = v.PID.(string)
	offset, _ = v.Offset.(string)
	return pid, offset
}

// restore finds the session a CONNECT asks for; nil when there is none to
// recover (the socket then starts afresh).
func (c *client) restore(ns *Namespace, auth []byte) *sdk.RestoredSession {
	rec := c.srv.rec
	pid, offset := recoveryAuth(auth)
	if pid == "" || len(pid) > 64 || len(offset) > 64 {
		return nil
	}
	if _, ok := recovery.ParseOffset(offset); !ok {
		// The client took a string argument of an event that was not
		// numbered for an offset (Node's client cannot tell): recover
		// from the session's own offset rather than lose the session.
		offset = ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), rec.RestoreTimeout)
	rs, err := rec.Store.Restore(ctx, ns.name, pid, offset)
	cancel()
	st := &c.srv.Stats.Recovery
	switch {
	case errors.Is(err, sdk.ErrNoSession):
		st.NotFound.Add(1)
		return nil
	case err != nil:
		st.Errors.Add(1)
		c.srv.log.WithError(err).WithField("namespace", ns.name).Warn("connection state recovery failed: new session")
		return nil
	case rs == nil || rs.ID == "" || rs.PID != pid:
		st.NotFound.Add(1)
		return nil
	}
	if ns.index.Rooms(rs.ID) != nil {
		// The old socket has not noticed its connection is gone yet. Its
		// close saves the session again; this client starts afresh.
		st.Collisions.Add(1)
		return nil
	}
	// Replay starts after what the client says it has seen; only a client
	// that saw nothing goes by the session's own offset.
	if offset != "" {
		rs.Offset = offset
	}
	return rs
}

// holdMax bounds the live packets held for a recovering socket.
const holdMax = 4096

// hold keeps live broadcasts for a socket while its missed packets are
// being sent, so that they arrive after them, each once. Once released it
// stays in place until the first live broadcast newer than what was
// replayed: this instance may deliver a broadcast the store already
// replayed (its adapter reads the stream behind Redis), and drops it.
type hold struct {
	mu       sync.Mutex
	msgs     [][]*engineio.Message
	released bool
	floor    recovery.Offset // released: the newest offset replayed
	overflow bool
}

// Outcomes of hold.add.
const (
	holdKept = iota // held, or dropped as already replayed
	holdPass        // send it; the hold stays
	holdDone        // send it; the hold is no longer needed
)

// add keeps msgs while the hold is on; once released it drops what was
// already replayed.
func (h *hold) add(msgs []*engineio.Message) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		o, ok := recovery.LastOffset(msgs[0].Frame)
		switch {
		case !ok:
			return holdPass // not numbered: never replayed
		case !h.floor.Less(o):
			return holdKept // replayed already
		}
		return holdDone
	}
	if len(h.msgs) >= holdMax {
		h.overflow = true
		return holdKept
	}
	h.msgs = append(h.msgs, msgs)
	return holdKept
}

// replay sends a recovered socket what it missed (from the store, then
// from the journal, then what arrived live meanwhile, each packet once,
// in offset order), then the CONNECT reply, then lets live traffic through.
func (c *client) replay(s *Socket, rs *sdk.RestoredSession, h *hold, reply []*engineio.Message) {
	var last recovery.Offset
	if o, ok := recovery.ParseOffset(rs.Offset); ok {
		last = o
	}
	sent := 0
	for i := range rs.Missed {
		m := &rs.Missed[i]
		o, ok := recovery.ParseOffset(m.Offset)
		if !ok || !last.Less(o) {
			continue
		}
		data := recovery.AppendOffset(m.Data, m.Offset)
		c.sess.Send(encode(&siowire.Packet{Type: eventType(m.Attachments), Namespace: s.ns.name, Data: data, Attachments: m.Attachments})...)
		last = o
		sent++
	}
	// Under the namespace's order lock no broadcast is between the journal
	// and its recipients: each one is either in the journal and already
	// held (skipped below), or not yet numbered (it goes out live, after
	// the release).
	s.ns.order.Lock()
	if s.ns.journal != nil {
		entries, _ := s.ns.journal.Since(s.Rooms(), last, true)
		for _, e := range entries {
			c.sess.Send(e.Msgs...)
			last = e.Offset
			sent++
		}
	}
	h.mu.Lock()
	for _, msgs := range h.msgs {
		if o, ok := recovery.LastOffset(msgs[0].Frame); ok && !last.Less(o) {
			continue // sent above
		}
		c.sess.Send(msgs...)
	}
	c.send(reply)
	h.released, h.floor = true, last
	overflow := h.overflow
	h.msgs = nil
	h.mu.Unlock()
	s.ns.order.Unlock()
	c.srv.Stats.Recovery.Replayed.Add(int64(sent))
	if overflow {
		// Live packets were dropped: the client comes back and recovers
		// them from its last offset.
		c.srv.Stats.Recovery.Overflows.Add(1)
		c.sess.Close(engineio.ReasonSlowConsumer)
	}
}

// recordOffset gives a broadcast its offset (this instance's numbering, or
// the one it came with from the cluster) and returns the data to encode.
// ok is false when the broadcast is not stored.
func (n *Namespace) recordOffset(data []byte, offset string) ([]byte, recovery.Offset, bool) {
	var o recovery.Offset
	if offset == "" {
		if n.srv.rec.Echo {
			return data, o, false // local only: the cluster numbers broadcasts
		}
		offset, o = n.journal.Assign()
	} else {
		var ok bool
		if o, ok = recovery.ParseOffset(offset); !ok {
			return data, o, false
		}
	}
	return recovery.AppendOffset(data, offset), o, true
}

// broadcastRecorded is BroadcastLocalBatch with recovery on: the offset is
// appended, the frames kept in the journal, and recipients queued in
// offset order (one namespace lock around numbering and queueing, so that
// every client sees its offsets increase).
func (n *Namespace) broadcastRecorded(b *engineio.Batch, opts rooms.Options, data []byte, attachments [][]byte, offset string) int {
	own := b == nil
	if own {
		b = batchPool.Get().(*engineio.Batch)
		defer batchPool.Put(b)
	}
	n.order.Lock()
	data, off, stored := n.recordOffset(data, offset)
	msgs := encode(&siowire.Packet{Type: eventType(attachments), Namespace: n.name, Data: data, Attachments: attachments})
	if stored && !n.journal.Append(opts, msgs, off) {
		// Not newer than what was delivered: the adapter handed it over
		// again (a restarted adapter reads on from an older position).
		n.order.Unlock()
		n.srv.Stats.Recovery.Redelivered.Add(1)
		return 0
	}
	cnt := n.index.Broadcast(msgs, opts, b)
	n.order.Unlock()
	if own {
		b.Flush()
	}
	n.countBroadcast(cnt, msgs)
	return cnt
}

var batchPool = sync.Pool{New: func() any { return new(engineio.Batch) }}
