package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/socketfleet/socketfleet/core/engineio"
	"github.com/socketfleet/socketfleet/core/protocol/siowire"
	"github.com/socketfleet/socketfleet/core/recovery"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/sdk"
)

// ErrAckTimeout is passed to an ack callback whose client did not answer in time.
var ErrAckTimeout = errors.New("socketio: ack timeout")

// ErrDisconnected is passed to pending ack callbacks when the socket goes away.
var ErrDisconnected = errors.New("socketio: socket disconnected")

// Event is one EVENT or BINARY_EVENT from a client.
type Event struct {
	Name        string
	Args        [][]byte // raw JSON arguments, placeholders included
	Attachments [][]byte
	packet      *siowire.Packet
}

// WantsAck reports whether the client asked for an acknowledgement.
func (e *Event) WantsAck() bool { return e.packet.HasID }

// Size is the event's size on the wire: JSON plus attachments.
func (e *Event) Size() int {
	n := len(e.packet.Data)
	for _, a := range e.Attachments {
		n += len(a)
	}
	return n
}

// Data returns the raw JSON array of the event as received.
func (e *Event) Data() []byte { return e.packet.Data }

// Socket is a client's connection to one namespace.
type Socket struct {
	id     string
	ns     *Namespace
	client *client
	// hold holds live traffic back while a recovered session is replayed
	// (Server.SetRecovery). Beside client, in the socket's first cache
	// line: a broadcast's delivery reads these two (Deliver, Prefetch).
	hold atomic.Pointer[hold]
	auth []byte

	state any // the handler's per-socket data; touched only from packet handling
	user  string
	data  []byte // JSON object from the auth plugin; nil = {}

	joinOnConnect []string // rooms to join once admitted (set during Connect)

	// Connection state recovery (Server.SetRecovery): the private session
	// id, the newest offset when it connected, whether it got a previous
	// session back (and hold, above).
	pid       string
	stamp     string
	recovered bool
	admitted  atomic.Bool // in the room index: its session is worth saving
	noRecover atomic.Bool // disconnected on purpose: its session is not kept

	mu     sync.Mutex
	acks   map[uint64]*pendingAck
	ackSeq uint64
	gone   bool
}

type pendingAck struct {
	cb    func(args [][]byte, attachments [][]byte, err error)
	timer *time.Timer
}

var (
	_ rooms.Member = (*Socket)(nil)
	_ rooms.Direct = (*Socket)(nil)
)

// ID is the socket id (20 characters, not the Engine.IO sid).
func (s *Socket) ID() string { return s.id }

// User is the user id the auth plugin established ("" without auth).
func (s *Socket) User() string { return s.user }

// Data is the JSON object the auth plugin attached ("{}" without auth).
func (s *Socket) Data() []byte {
	if len(s.data) == 0 {
		return []byte("{}")
	}
	return s.data
}

// SetIdentity records what authentication established. The handler calls
// it from Connect.
func (s *Socket) SetIdentity(user string, data []byte) { s.user, s.data = user, data }

// RedactAuth drops top-level fields (secrets) from the CONNECT payload the
// socket keeps, so that Auth, HandshakeJSON (the backend API, fetchSockets
// from other instances) and the handler's rules no longer see them.
// Handlers call it from Connect, before the socket is admitted.
func (s *Socket) RedactAuth(fields []string) {
	if len(fields) > 0 {
		s.auth = dropFields(s.auth, fields)
	}
}

// dropFields returns obj without the named top-level fields, the others in
// their order and bytes; obj itself when it is not an object or has none.
func dropFields(obj []byte, fields []string) []byte {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return obj
	}
	out := []byte{'{'}
	dropped := false
	for dec.More() {
		t, err := dec.Token()
		key, ok := t.(string)
		var val json.RawMessage
		if err != nil || !ok || dec.Decode(&val) != nil {
			return []byte("{}") // invalid: keep nothing rather than a secret
		}
		if slices.Contains(fields, key) {
			dropped = true
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = siowire.AppendString(out, key)
		out = append(append(out, ':'), val...)
	}
	if !dropped {
		return obj
	}
	return append(out, '}')
}

// JoinOnConnect names rooms the socket joins when it is admitted, before
// its CONNECT reply is sent. Handlers call it from Connect.
func (s *Socket) JoinOnConnect(rooms ...string) { s.joinOnConnect = append(s.joinOnConnect, rooms...) }

// State returns what the handler stored with SetState.
func (s *Socket) State() any { return s.state }

// SetState stores the handler's per-socket data. Handlers call it only from
// their own callbacks, which never run concurrently for one client.
func (s *Socket) SetState(v any) { s.state = v }

// Namespace returns the socket's namespace.
func (s *Socket) Namespace() *Namespace { return s.ns }

// Auth returns the raw JSON auth object of the CONNECT packet ({} when none).
func (s *Socket) Auth() []byte { return s.auth }

// Handshake returns the Engine.IO handshake of the socket's client.
func (s *Socket) Handshake() *engineio.Handshake { return s.client.sess.Handshake() }

// ClientID returns the id of the socket's Engine.IO connection (one per
// client, shared by its namespaces' sockets).
func (s *Socket) ClientID() string { return s.client.sess.ID() }

// Transport names the client's current transport.
func (s *Socket) Transport() string { return s.client.sess.Transport() }

// send queues packets for this socket, counted for its namespace.
func (s *Socket) send(msgs []*engineio.Message) bool {
	s.ns.Stats.PacketsOut.Add(1)
	s.ns.Stats.BytesOut.Add(int64(msgBytes(msgs)))
	return s.client.send(msgs)
}

// Deliver implements rooms.Member.
func (s *Socket) Deliver(msgs []*engineio.Message, b *engineio.Batch) {
	if h := s.hold.Load(); h != nil {
		switch h.add(msgs) {
		case holdKept:
			return // being recovered: sent after what it missed, or already sent
		case holdDone:
			s.hold.CompareAndSwap(h, nil)
		}
	}
	b.Send(s.client.sess, msgs)
}

// DirectSession implements rooms.Direct: without connection state
// recovery no hold ever stands between a broadcast and the session (a
// hold is only made for a recovered connection's replay, and recovery is
// set before serving), so a broadcast may write to the session without
// reading the socket.
func (s *Socket) DirectSession() *engineio.Session {
	if s.client.srv.rec != nil {
		return nil
	}
	return s.client.sess
}

// Prefetch implements rooms.Member: the socket's line, then its client's,
// then its session's (engineio.Session.Prefetch). The pointers followed
// are set before the socket joins any room.
func (s *Socket) Prefetch(stage int) {
	switch stage {
	case 0:
		engineio.Prefetch(unsafe.Pointer(s)) // client and hold
	case 1:
		engineio.Prefetch(unsafe.Pointer(s.client))
	default:
		s.client.sess.Prefetch()
	}
}

// Join adds the socket to rooms, or to none of them when the room index
// refuses (rooms.ErrTooManyRooms, rooms.ErrSocketRoom).
func (s *Socket) Join(rooms ...string) error {
	err := s.ns.index.Join(s.id, rooms...)
	if err != nil {
		s.ns.srv.Stats.JoinsRefused.Add(1)
		return err
	}
	s.saveLive()
	return nil
}

// JoinSocketRooms is Join that may also join other sockets' id rooms
// (rooms.Index.JoinSocketRooms): for rules that name them explicitly.
func (s *Socket) JoinSocketRooms(rooms ...string) error {
	err := s.ns.index.JoinSocketRooms(s.id, rooms...)
	if err != nil {
		s.ns.srv.Stats.JoinsRefused.Add(1)
		return err
	}
	s.saveLive()
	return nil
}

// Leave removes the socket from rooms.
func (s *Socket) Leave(rooms ...string) {
	s.ns.index.Leave(s.id, rooms...)
	s.saveLive()
}

// Rooms lists the socket's rooms, its own id first.
func (s *Socket) Rooms() []string { return s.ns.index.Rooms(s.id) }

// Emit sends an event to this socket. args are raw JSON values.
func (s *Socket) Emit(event string, args [][]byte, attachments [][]byte) bool {
	if s.ns.srv.rec != nil {
		// Stored with an offset like any broadcast, as Node does, so that
		// a recovering client gets it again.
		s.ns.BroadcastData(rooms.Options{Rooms: []string{s.id}}, EventData(event, args), attachments)
		return true
	}
	p := &siowire.Packet{Type: eventType(attachments), Namespace: s.ns.name, Data: EventData(event, args), Attachments: attachments}
	return s.send(encode(p))
}

// EmitWithAck sends an event and calls cb with the client's ack arguments,
// or with ErrAckTimeout after timeout (0 = the server's default), or
// ErrDisconnected when the socket goes away first. cb runs once.
func (s *Socket) EmitWithAck(event string, args, attachments [][]byte, timeout time.Duration,
	cb func(args, attachments [][]byte, err error)) {
	s.emitDataWithAck(EventData(event, args), attachments, timeout, cb)
}

// emitDataWithAck is EmitWithAck of a ready JSON array (["event", ...]).
func (s *Socket) emitDataWithAck(data []byte, attachments [][]byte, timeout time.Duration,
	cb func(args, attachments [][]byte, err error)) {
	if timeout <= 0 {
		timeout = s.ns.srv.opts.AckTimeout
	}
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		cb(nil, nil, ErrDisconnected)
		return
	}
	id := s.ackSeq
	s.ackSeq++
	pa := &pendingAck{cb: cb}
	pa.timer = time.AfterFunc(timeout, func() {
		if s.takeAck(id) != nil {
			cb(nil, nil, ErrAckTimeout)
		}
	})
	if s.acks == nil {
		s.acks = make(map[uint64]*pendingAck)
	}
	s.acks[id] = pa
	s.mu.Unlock()
	p := &siowire.Packet{Type: eventType(attachments), Namespace: s.ns.name, ID: id, HasID: true,
		Data: data, Attachments: attachments}
	s.send(encode(p))
}

func (s *Socket) takeAck(id uint64) *pendingAck {
	s.mu.Lock()
	defer s.mu.Unlock()
	pa := s.acks[id]
	if pa != nil {
		delete(s.acks, id)
	}
	return pa
}

func (s *Socket) resolveAck(p *siowire.Packet) {
	pa := s.takeAck(p.ID)
	if pa == nil {
		return // late or unknown: the callback already timed out
	}
	pa.timer.Stop()
	args, err := siowire.SplitArray(p.Data)
	if err != nil {
		pa.cb(nil, nil, err)
		return
	}
	pa.cb(args, p.Attachments, nil)
}

// Ack answers a client's event acknowledgement. It does nothing if the
// client asked for none.
func (s *Socket) Ack(e *Event, args [][]byte, attachments [][]byte) {
	if !e.packet.HasID {
		return
	}
	t := siowire.Ack
	if len(attachments) > 0 {
		t = siowire.BinaryAck
	}
	p := &siowire.Packet{Type: t, Namespace: s.ns.name, ID: e.packet.ID, HasID: true,
		Data: siowire.AppendArray(nil, args...), Attachments: attachments}
	s.send(encode(p))
}

// AckRaw answers with a raw JSON array (byte-exact pass-through).
func (s *Socket) AckRaw(e *Event, array []byte, attachments [][]byte) {
	if !e.packet.HasID {
		return
	}
	t := siowire.Ack
	if len(attachments) > 0 {
		t = siowire.BinaryAck
	}
	p := &siowire.Packet{Type: t, Namespace: s.ns.name, ID: e.packet.ID, HasID: true, Data: array, Attachments: attachments}
	s.send(encode(p))
}

// Disconnect sends DISCONNECT for this namespace; with close, the whole
// Engine.IO connection is closed too.
func (s *Socket) Disconnect(close bool) {
	s.noRecover.Store(true)
	if close {
		s.send(encode(&siowire.Packet{Type: siowire.Disconnect, Namespace: s.ns.name}))
		s.client.sess.Close(engineio.ReasonForcedClose)
		return
	}
	s.onClose(ReasonServerDisconnect, true)
}

// onClose leaves the namespace; notify sends DISCONNECT to the client.
func (s *Socket) onClose(reason string, notify bool) {
	if notify {
		s.saveOnClose(reason)
		s.admitted.Store(false)
		// Out of the rooms before the DISCONNECT: a broadcast in between
		// would reach a socket its client has already seen leave.
		s.ns.index.Remove(s.id)
		s.send(encode(&siowire.Packet{Type: siowire.Disconnect, Namespace: s.ns.name}))
	}
	s.client.removeSocket(s)
	s.finish(reason)
}

// finish runs once: leaves all rooms, fails pending acks, tells the handler.
func (s *Socket) finish(reason string) {
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		return
	}
	s.gone = true
	acks := s.acks
	s.acks = nil
	s.mu.Unlock()
	for _, pa := range acks {
		pa.timer.Stop()
		pa.cb(nil, nil, ErrDisconnected)
	}
	s.saveOnClose(reason)
	s.admitted.Store(false)
	s.ns.index.Remove(s.id)
	s.ns.srv.Stats.Sockets.Add(-1)
	s.ns.handler.Disconnected(s, reason)
}

func eventType(attachments [][]byte) siowire.PacketType {
	if len(attachments) > 0 {
		return siowire.BinaryEvent
	}
	return siowire.Event
}

// EventData builds the JSON array ["event", args...].
func EventData(event string, args [][]byte) []byte {
	return siowire.AppendEvent(nil, event, args)
}

// Namespace is a declared namespace with its rooms.
type Namespace struct {
	name    string
	srv     *Server
	handler Handler
	index   rooms.Index
	Stats   NamespaceStats
	removed atomic.Bool // RemoveNamespace

	// With recovery: recent broadcasts with their offsets, and the lock
	// that numbers and queues them in one order.
	journal *recovery.Journal
	order   sync.Mutex
}

// Name returns the namespace name ("/" or "/admin").
func (n *Namespace) Name() string { return n.name }

// RoomIndex returns the namespace's room index.
func (n *Namespace) RoomIndex() rooms.Index { return n.index }

// Broadcast sends an event to the sockets matching opts. The packet is
// encoded once; every recipient queues the same frames. It returns the
// number of local recipients.
func (n *Namespace) Broadcast(opts rooms.Options, event string, args, attachments [][]byte) int {
	return n.BroadcastData(opts, EventData(event, args), attachments)
}

// BroadcastData broadcasts a ready JSON array (["event", ...]) as is, to
// the local sockets and, with a cluster adapter, to the other instances.
func (n *Namespace) BroadcastData(opts rooms.Options, data []byte, attachments [][]byte) int {
	if rec := n.srv.rec; rec != nil && rec.Echo && n.srv.cluster != nil {
		if n.srv.cluster.Send(sdk.AdapterMessage{Namespace: n.name, Rooms: opts.Rooms, Except: opts.Except, Data: data, Attachments: attachments}) {
			return 0 // delivered here when the adapter hands it back, numbered
		}
		n.srv.Stats.ClusterDropped.Add(1)
		return n.BroadcastLocal(opts, data, attachments) // at least here, unnumbered
	}
	if c := n.srv.cluster; c != nil {
		if !c.Send(sdk.AdapterMessage{Namespace: n.name, Rooms: opts.Rooms, Except: opts.Except, Data: data, Attachments: attachments}) {
			n.srv.Stats.ClusterDropped.Add(1)
		}
	}
	return n.BroadcastLocal(opts, data, attachments)
}

// BroadcastLocal delivers to this instance's sockets only (messages from
// other instances, or what concerns this instance alone).
func (n *Namespace) BroadcastLocal(opts rooms.Options, data []byte, attachments [][]byte) int {
	return n.BroadcastLocalBatch(nil, opts, data, attachments)
}

// BroadcastLocalBatch is BroadcastLocal with the writes held in b until
// its Flush (nil: written before it returns), so that many broadcasts
// leave in one system call per recipient.
func (n *Namespace) BroadcastLocalBatch(b *engineio.Batch, opts rooms.Options, data []byte, attachments [][]byte) int {
	if n.srv.rec != nil {
		return n.broadcastRecorded(b, opts, data, attachments, "")
	}
	msgs := encode(&siowire.Packet{Type: eventType(attachments), Namespace: n.name, Data: data, Attachments: attachments})
	cnt := n.index.Broadcast(msgs, opts, b)
	n.countBroadcast(cnt, msgs)
	return cnt
}

// countBroadcast counts a broadcast delivered to cnt local sockets.
func (n *Namespace) countBroadcast(cnt int, msgs []*engineio.Message) {
	n.srv.Stats.Broadcasts.Add(1)
	n.srv.Stats.PacketsOut.Add(int64(cnt))
	n.Stats.PacketsOut.Add(int64(cnt))
	n.Stats.BytesOut.Add(int64(cnt * msgBytes(msgs)))
}

// DeliverCluster delivers a broadcast from the cluster adapter to this
// instance's sockets, with its offset when it has one (recovery on).
func (n *Namespace) DeliverCluster(b *engineio.Batch, m *sdk.AdapterMessage) int {
	opts := rooms.Options{Rooms: m.Rooms, Except: m.Except}
	if n.srv.rec != nil && !m.Volatile {
		return n.broadcastRecorded(b, opts, m.Data, m.Attachments, m.Offset)
	}
	return n.BroadcastLocalBatch(b, opts, m.Data, m.Attachments)
}

// SocketCount returns the number of local sockets in the namespace.
func (n *Namespace) SocketCount() int { return len(n.index.Sockets(nil)) }

func msgBytes(msgs []*engineio.Message) int {
	n := 0
	for _, m := range msgs {
		n += len(m.Frame)
	}
	return n
}
