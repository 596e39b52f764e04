// Package socketio is the Socket.IO v5 layer over Engine.IO: namespaces,
// sockets, rooms (through a room index, core/rooms), events, acknowledgements in both
// directions and binary attachments. What a namespace does with events is
// decided by its Handler (the declarative router, in practice).
package socketio

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/socketfleet/socketfleet/core/engineio"
	"github.com/socketfleet/socketfleet/core/protocol/eiowire"
	"github.com/socketfleet/socketfleet/core/protocol/siowire"
	"github.com/socketfleet/socketfleet/core/recovery"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/sdk"
)

// Disconnect reasons, as Socket.IO names them.
const (
	ReasonServerDisconnect = "server namespace disconnect"
	ReasonClientDisconnect = "client namespace disconnect"
	ReasonServerShutdown   = "server shutting down"
	ReasonInvalidState     = "invalid state"
)

// Handler decides what a namespace does. Its methods run on the goroutine
// that read the packet, one packet of a client at a time.
type Handler interface {
	// Connect may refuse a CONNECT with a *ConnectError (or any error: its
	// text becomes the message).
	Connect(s *Socket) error
	// Connected runs right after the CONNECT reply was queued.
	Connected(s *Socket)
	Event(s *Socket, e *Event)
	Disconnected(s *Socket, reason string)
}

// ConnectError is sent to the client as CONNECT_ERROR {message, data}.
type ConnectError struct {
	Message string
	Data    []byte // raw JSON, optional
}

func (e *ConnectError) Error() string { return e.Message }

// Options configures the Socket.IO layer.
type Options struct {
	ConnectTimeout time.Duration // close a client that joins no namespace in time
	AckTimeout     time.Duration // default for EmitWithAck
	MaxAttachments int
	// AttachmentTimeout bounds the wait for a binary packet's attachments;
	// a client that withholds them is disconnected (they are buffered).
	AttachmentTimeout time.Duration
	// MaxRooms bounds the rooms one socket is in (rooms.Memory.MaxRooms)
	// in the namespaces whose index the server makes.
	MaxRooms int
	Log      *logrus.Entry
}

// clockStart makes time.Since(clockStart) a monotonic clock.
var clockStart = time.Now().Add(-time.Second) // never 0: 0 means none

// DefaultAttachmentTimeout is Options.AttachmentTimeout unless set.
const DefaultAttachmentTimeout = 10 * time.Second

// ReasonAttachmentTimeout closes a client that withheld attachments.
const ReasonAttachmentTimeout = "attachment timeout"

// Stats are cheap counters the core reads for health and metrics.
type Stats struct {
	Connections  atomic.Int64 // open Engine.IO sessions
	Sockets      atomic.Int64 // connected namespace sockets
	PacketsIn    atomic.Int64
	PacketsOut   atomic.Int64 // per recipient
	Broadcasts   atomic.Int64
	ParseErrors  atomic.Int64
	ConnectsDone atomic.Int64
	// ClusterDropped counts broadcasts the cluster link refused (its
	// bounded queue was full); local delivery happened regardless.
	ClusterDropped atomic.Int64
	// InvalidNamespace counts CONNECTs to undeclared namespaces.
	InvalidNamespace atomic.Int64
	// Cluster requests: sent to the other instances, failed (the adapter
	// could not carry them), dropped (too many in the background), served
	// for other instances, and ignored (unknown namespace or type).
	ClusterRequestsSent    atomic.Int64
	ClusterRequestErrors   atomic.Int64
	ClusterRequestsDropped atomic.Int64
	ClusterRequestsServed  atomic.Int64
	ClusterRequestsIgnored atomic.Int64
	// ServerEventsUnknown counts server-side emits no handler knew;
	// ServerEventsInvalid those that were not an event array.
	ServerEventsUnknown atomic.Int64
	ServerEventsInvalid atomic.Int64
	// JoinsRefused counts joins refused by the room index (too many rooms,
	// another socket's id); AttachmentTimeouts clients closed for
	// withholding a binary packet's attachments.
	JoinsRefused       atomic.Int64
	AttachmentTimeouts atomic.Int64
	// Recovery counts connection state recoveries (Server.SetRecovery).
	Recovery RecoveryStats

	closedMu sync.Mutex
	closed   map[string]int64 // connections closed, by reason
}

func (st *Stats) countClose(reason string) {
	st.closedMu.Lock()
	if st.closed == nil {
		st.closed = make(map[string]int64)
	}
	st.closed[reason]++
	st.closedMu.Unlock()
}

// Closed returns the connections closed so far, by reason.
func (st *Stats) Closed() map[string]int64 {
	st.closedMu.Lock()
	defer st.closedMu.Unlock()
	out := make(map[string]int64, len(st.closed))
	for k, v := range st.closed {
		out[k] = v
	}
	return out
}

// NamespaceStats count one namespace's traffic.
type NamespaceStats struct {
	EventsIn   atomic.Int64 // events received
	BytesIn    atomic.Int64 // their JSON and attachment bytes
	PacketsOut atomic.Int64 // packets queued to clients, per recipient
	BytesOut   atomic.Int64 // their bytes, per recipient
}

// Server holds the namespaces and serves Engine.IO sessions.
type Server struct {
	opts Options
	log  *logrus.Entry
	// nsps are the namespaces (namespaces.go): a table replaced whole when
	// a reload adds or removes one, so readers take no lock.
	nsps    atomic.Pointer[nsTable]
	nspsMu  sync.Mutex // serializes the replacements
	cluster Cluster    // nil on a single instance
	rec     *Recovery  // nil: connection state recovery off
	// background bounds the cluster requests running without a waiter.
	background chan struct{}
	Stats      Stats
	// Limits a reload may change (SetLimits): the rooms per socket of new
	// namespaces, and the wait for attachments (ns).
	maxRooms      atomic.Int64
	attachTimeout atomic.Int64
}

// SetLimits replaces the bound on rooms per socket (in every namespace
// whose index is a *rooms.Memory, and in those added later) and the wait
// for a binary packet's attachments (from the next binary packet on);
// zero values: the defaults. A socket already in more rooms than the new
// bound keeps them but joins no more.
func (srv *Server) SetLimits(maxRooms int, attachmentTimeout time.Duration) {
	if attachmentTimeout <= 0 {
		attachmentTimeout = DefaultAttachmentTimeout
	}
	if maxRooms <= 0 {
		maxRooms = rooms.DefaultMaxRooms
	}
	srv.attachTimeout.Store(int64(attachmentTimeout))
	srv.maxRooms.Store(int64(maxRooms))
	for _, n := range srv.Namespaces() {
		if m, ok := n.index.(interface{ SetMaxRooms(int) }); ok {
			m.SetMaxRooms(maxRooms)
		}
	}
}

// MaxRooms is the bound on rooms per socket in force.
func (srv *Server) MaxRooms() int { return int(srv.maxRooms.Load()) }

// SetCluster makes broadcasts and cluster-wide operations also reach other
// instances. Call before serving.
func (srv *Server) SetCluster(c Cluster) { srv.cluster = c }

// NewServer returns a server with no namespaces.
func NewServer(opts Options) *Server {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 45 * time.Second
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 10 * time.Second
	}
	if opts.MaxAttachments <= 0 {
		opts.MaxAttachments = 10
	}
	if opts.AttachmentTimeout <= 0 {
		opts.AttachmentTimeout = DefaultAttachmentTimeout
	}
	if opts.MaxRooms <= 0 {
		opts.MaxRooms = rooms.DefaultMaxRooms
	}
	if opts.Log == nil {
		opts.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	srv := &Server{opts: opts, log: opts.Log, background: make(chan struct{}, maxClusterBackground)}
	srv.nsps.Store(&nsTable{byName: map[string]*Namespace{}})
	srv.SetLimits(opts.MaxRooms, opts.AttachmentTimeout)
	return srv
}

// AddNamespace declares a namespace: before the server starts serving, or
// while it serves (a reload); clients may connect to it at once.
func (srv *Server) AddNamespace(name string, h Handler, a rooms.Index) *Namespace {
	if a == nil {
		m := rooms.NewMemory()
		m.MaxRooms = srv.MaxRooms()
		a = m
	}
	n := &Namespace{name: name, srv: srv, handler: h, index: a}
	if r := srv.rec; r != nil {
		n.journal = recovery.NewJournal(r.JournalAge, r.JournalEntries, r.JournalBytes)
	}
	srv.replaceNamespaces(func(t *nsTable) { t.add(n) })
	return n
}

// Namespace returns a declared namespace or nil.
func (srv *Server) Namespace(name string) *Namespace { return srv.nsps.Load().byName[name] }

// Namespaces returns all namespaces in declaration order (do not modify).
func (srv *Server) Namespaces() []*Namespace { return srv.nsps.Load().order }

// Open implements engineio.Handler: a new client.
func (srv *Server) Open(sess *engineio.Session) {
	c := &client{srv: srv, sess: sess, dec: siowire.NewDecoder(srv.opts.MaxAttachments)}
	srv.Stats.Connections.Add(1)
	if srv.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		srv.log.WithFields(logrus.Fields{"sid": sess.ID(), "remote_addr": sess.Handshake().Address,
			"transport": sess.Transport()}).Debug("connection opened")
	}
	c.mu.Lock() // the timer may fire before the assignment is visible otherwise
	c.connectTimer = time.AfterFunc(srv.opts.ConnectTimeout, c.onConnectTimeout)
	c.mu.Unlock()
	sess.SetHandler(c.onMessage, c.onClose)
}

// client is one Engine.IO session and the namespace sockets on it.
type client struct {
	srv          *Server
	sess         *engineio.Session
	dec          *siowire.Decoder
	connectTimer *time.Timer
	// partialSince is when the binary packet being assembled began (ns
	// since clockStart; 0: none); attachTimer, made on the first such packet and
	// reused, closes the client if it is still waiting at the deadline.
	partialSince atomic.Int64
	attachTimer  *time.Timer // touched by the reader only

	mu      sync.Mutex
	sockets []*Socket // by namespace; usually one
	closed  bool
}

// stopConnectTimerLocked stops the connect timer and lets it be collected:
// a connected client should not keep it for its whole life.
func (c *client) stopConnectTimerLocked() {
	if c.connectTimer != nil {
		c.connectTimer.Stop()
		c.connectTimer = nil
	}
}

func (c *client) onConnectTimeout() {
	c.mu.Lock()
	n := len(c.sockets)
	c.mu.Unlock()
	if n == 0 {
		c.sess.Close(engineio.ReasonForcedClose)
	}
}

func (c *client) socket(nsp string) *Socket {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sockets {
		if s.ns.name == nsp {
			return s
		}
	}
	return nil
}

func (c *client) onMessage(p eiowire.Packet) {
	var pkt *siowire.Packet
	var err error
	if p.Binary {
		pkt, err = c.dec.AddBinary(p.Data)
	} else {
		pkt, err = c.dec.AddText(p.Data)
	}
	if err != nil {
		c.srv.Stats.ParseErrors.Add(1)
		c.srv.log.WithField("sid", c.sess.ID()).WithError(err).Debug("invalid packet; closing connection")
		c.sess.Close(engineio.ReasonParseError)
		return
	}
	if pkt == nil {
		if !p.Binary {
			c.awaitAttachments()
		}
		return // waiting for attachments
	}
	if p.Binary {
		c.partialSince.Store(0) // the timer, if it fires, finds nothing
	}
	c.srv.Stats.PacketsIn.Add(1)
	c.dispatch(pkt)
}

// awaitAttachments starts the clock for a binary packet's attachments:
// one timer per client, made once and reset per packet, no goroutine. A
// firing meant for an earlier packet finds the clock restarted and does
// nothing; the Reset here makes sure one fires for this packet.
func (c *client) awaitAttachments() {
	c.partialSince.Store(int64(time.Since(clockStart)))
	d := time.Duration(c.srv.attachTimeout.Load())
	if c.attachTimer == nil {
		c.attachTimer = time.AfterFunc(d, c.onAttachmentTimeout)
		return
	}
	c.attachTimer.Reset(d)
}

func (c *client) onAttachmentTimeout() {
	since := c.partialSince.Load()
	if since == 0 {
		return
	}
	if time.Since(clockStart)-time.Duration(since) < time.Duration(c.srv.attachTimeout.Load()) {
		return
	}
	c.srv.Stats.AttachmentTimeouts.Add(1)
	c.srv.log.WithField("sid", c.sess.ID()).Debug("attachments withheld; closing connection")
	c.sess.Close(ReasonAttachmentTimeout)
}

func (c *client) dispatch(p *siowire.Packet) {
	if p.Type == siowire.Connect {
		c.connect(p)
		return
	}
	s := c.socket(p.Namespace)
	if s == nil {
		// A packet for a namespace that is not connected: invalid state.
		c.sess.Close(ReasonInvalidState)
		return
	}
	switch p.Type {
	case siowire.Disconnect:
		s.onClose(ReasonClientDisconnect, false)
	case siowire.Event, siowire.BinaryEvent:
		name, args, err := siowire.EventName(p)
		if err != nil {
			c.sess.Close(engineio.ReasonParseError)
			return
		}
		ev := &Event{Name: name, Args: args, Attachments: p.Attachments, packet: p}
		s.ns.Stats.EventsIn.Add(1)
		s.ns.Stats.BytesIn.Add(int64(ev.Size()))
		s.ns.handler.Event(s, ev)
	case siowire.Ack, siowire.BinaryAck:
		s.resolveAck(p)
	default:
		c.sess.Close(ReasonInvalidState)
	}
}

func (c *client) connect(p *siowire.Packet) {
	ns := c.srv.Namespace(p.Namespace)
	if ns == nil {
		c.srv.Stats.InvalidNamespace.Add(1)
		c.send(encode(&siowire.Packet{Type: siowire.ConnectError, Namespace: p.Namespace, Data: []byte(`{"message":"Invalid namespace"}`)}))
		return
	}
	if c.socket(p.Namespace) != nil {
		c.sess.Close(ReasonInvalidState)
		return
	}
	auth := p.Data
	if len(auth) == 0 {
		auth = []byte("{}")
	}
	s := &Socket{id: engineio.NewID(), ns: ns, client: c, auth: auth}
	var rs *sdk.RestoredSession
	if c.srv.rec != nil {
		if rs = c.restore(ns, auth); rs != nil {
			s.id, s.pid, s.recovered = rs.ID, rs.PID, true
			s.SetIdentity(rs.User, rs.Data)
			if string(rs.Data) == "null" {
				s.data = nil
			}
		} else {
			s.pid = engineio.NewID()
		}
	}
	if err := ns.handler.Connect(s); err != nil {
		var ce *ConnectError
		if !errors.As(err, &ce) {
			ce = &ConnectError{Message: err.Error()}
		}
		data := siowire.AppendString([]byte(`{"message":`), ce.Message)
		if len(ce.Data) > 0 {
			data = append(append(data, `,"data":`...), ce.Data...)
		}
		data = append(data, '}')
		c.send(encode(&siowire.Packet{Type: siowire.ConnectError, Namespace: p.Namespace, Data: data}))
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.sockets = append(c.sockets, s)
	c.stopConnectTimerLocked()
	c.mu.Unlock()
	var h *hold
	if rs != nil {
		h = &hold{}
		s.hold.Store(h) // before it can receive anything
	}
	if ns.journal != nil {
		s.stamp = ns.journal.Newest()
	}
	ns.index.Add(s)
	if rs != nil {
		var keep []string
		for _, r := range rs.Rooms {
			if r != s.id {
				keep = append(keep, r)
			}
		}
		// The session's rooms were its own: no rule is asked again.
		if err := ns.index.JoinSocketRooms(s.id, keep...); err != nil {
			c.srv.Stats.JoinsRefused.Add(1)
		}
	}
	if len(s.joinOnConnect) > 0 {
		_ = s.Join(s.joinOnConnect...) // before the reply: no broadcast can miss it
		s.joinOnConnect = nil
	}
	c.srv.Stats.Sockets.Add(1)
	c.srv.Stats.ConnectsDone.Add(1)
	reply := []byte(`{"sid":"` + s.id + `"}`)
	if s.pid != "" {
		reply = []byte(`{"sid":"` + s.id + `","pid":"` + s.pid + `"}`)
	}
	s.admitted.Store(true) // from now on its session is saved
	s.saveLive()
	if rs != nil {
		c.srv.Stats.Recovery.Recovered.Add(1)
		c.replay(s, rs, h, encode(&siowire.Packet{Type: siowire.Connect, Namespace: ns.name, Data: reply}))
	} else {
		c.send(encode(&siowire.Packet{Type: siowire.Connect, Namespace: ns.name, Data: reply}))
	}
	ns.handler.Connected(s)
	if ns.removed.Load() { // withdrawn by a reload while this CONNECT ran (RemoveNamespace)
		s.Disconnect(false)
	}
}

func (c *client) send(msgs []*engineio.Message) bool {
	c.srv.Stats.PacketsOut.Add(1)
	return c.sess.Send(msgs...)
}

func (c *client) onClose(reason string) {
	c.mu.Lock()
	c.stopConnectTimerLocked()
	c.closed = true
	c.partialSince.Store(0)
	sockets := c.sockets
	c.sockets = nil
	c.mu.Unlock()
	for _, s := range sockets {
		s.finish(reason)
	}
	c.srv.Stats.Connections.Add(-1)
	c.srv.Stats.countClose(reason)
	if c.srv.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		hs := c.sess.Handshake()
		c.srv.log.WithFields(logrus.Fields{"sid": c.sess.ID(), "remote_addr": hs.Address,
			"reason": reason, "duration_ms": time.Since(hs.Time).Milliseconds()}).Debug("connection closed")
	}
}

func (c *client) removeSocket(s *Socket) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.sockets {
		if x == s {
			c.sockets = append(c.sockets[:i], c.sockets[i+1:]...)
			return
		}
	}
}

// encode turns a packet into Engine.IO messages: the text frame and one
// binary message per attachment.
func encode(p *siowire.Packet) []*engineio.Message {
	frame := make([]byte, engineio.Headroom, engineio.Headroom+24+len(p.Namespace)+len(p.Data))
	frame = append(frame, '4')
	frame = siowire.AppendHeader(frame, p.Type, p.Namespace, len(p.Attachments), p.ID, p.HasID)
	frame = append(frame, p.Data...)
	msgs := make([]*engineio.Message, 0, 1+len(p.Attachments))
	msgs = append(msgs, engineio.NewFramed(frame, false))
	for _, a := range p.Attachments {
		msgs = append(msgs, engineio.NewBinary(a))
	}
	return msgs
}
