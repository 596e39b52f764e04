package engineio

import (
	"cmp"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/socketfleet/socketfleet/core/protocol/eiowire"
)

// Handshake is what the core keeps of the request that opened a session.
type Handshake struct {
	Time    time.Time
	Address string
	URL     string // request URI of the handshake, query included
	Secure  bool
	// headers are the kept headers, "Name\x00value\x00" for each value
	// (HTTP refuses NUL in names and values). One string, not a map:
	// an http.Header of even one entry costs a connection ~400 B for its
	// whole life, and most connections never read it again.
	headers string
}

// Header returns the kept handshake headers (canonical names), parsed on
// demand; the caller may keep or change the map.
func (h *Handshake) Header() http.Header {
	out := http.Header{}
	for s := h.headers; s != ""; {
		k, rest, _ := strings.Cut(s, "\x00")
		v, rest2, _ := strings.Cut(rest, "\x00")
		out[k] = append(out[k], v)
		s = rest2
	}
	return out
}

// droppedHeaders are handshake headers only the transport or the browser's
// caching needed; every connection would otherwise keep them for its whole
// life. The rest (cookie, authorization, origin, user-agent, x-forwarded-*,
// ...) stay available to auth plugins and event rules.
var droppedHeaders = map[string]bool{
	"Sec-Websocket-Key": true, "Sec-Websocket-Version": true, "Sec-Websocket-Extensions": true,
	"Upgrade": true, "Connection": true, "Accept": true, "Accept-Encoding": true,
	"Accept-Language": true, "Cache-Control": true, "Pragma": true,
	"Sec-Fetch-Dest": true, "Sec-Fetch-Mode": true, "Sec-Fetch-Site": true,
}

// Query parses the handshake's query parameters. Parsed on demand: most
// connections never need them, and a parsed map costs every connection
// a few hundred bytes for its whole life.
func (h *Handshake) Query() url.Values {
	if i := strings.IndexByte(h.URL, '?'); i >= 0 {
		q, _ := url.ParseQuery(h.URL[i+1:])
		return q
	}
	return url.Values{}
}

// Close reasons, as Socket.IO reports them to applications.
const (
	ReasonTransportClose = "transport close"
	ReasonTransportError = "transport error"
	ReasonPingTimeout    = "ping timeout"
	ReasonParseError     = "parse error"
	ReasonForcedClose    = "forced close"
	ReasonSlowConsumer   = "slow consumer"
	ReasonShuttingDown   = "server shutting down"
	ReasonRateLimited    = "rate limit exceeded"
	ReasonInvalidUTF8    = "invalid utf-8"
)

const (
	transportPolling = iota
	transportWebSocket
)

// Session is one Engine.IO connection, whichever transport carries it.
// Threading model: docs/architecture.md, "Threading model".
// Who guards what:
//
//   - id, srv, hs, wake: set by newSession; read-only after.
//   - onMessage, onClose: set by SetHandler in Handler.Open, before the
//     transport starts; read-only after.
//   - mu guards the fields from queue to closeSent, and ws.writing.
//   - tat: whoever is receiving (one packet of a session at a time).
//   - hb: the heartbeat wheel's lock (heartbeat.go).
//   - ws: see wsTransport.
type Session struct {
	// The fields a broadcast's delivery reads (send, directLocked) come
	// first and fill the first two cache lines, srv to ws.fd; the
	// rest follow (Prefetch, batch.go).
	srv *Server

	mu        sync.Mutex
	queue     []*Message // waiting for the transport
	spare     []*Message // the previous batch's backing array, reused
	transport uint8
	closed    bool // no more packets are accepted
	closing   bool // closed by the server: the transport flushes, then ends
	probing   bool // a WebSocket probe is under way
	upgrading bool // probe answered; polling GETs get noop until '5'
	awaitPong bool
	// Polling (polling.go): one GET and one POST at a time.
	getActive  bool
	postActive bool
	// finished: whoever set it runs finish (unregister, onClose), once.
	finished bool
	// clientClosed: the session ended first for ReasonTransportClose
	// (polling answers its GET with noop, not close).
	clientClosed bool
	// closeSent: a WebSocket close frame went out; there is one at most.
	closeSent bool

	// ws is the WebSocket transport, zero until attached (websocket.go);
	// held by value: one allocation per session.
	ws wsTransport

	id  string
	hot *live // the live options at its handshake: its heartbeat values

	onMessage func(eiowire.Packet)
	onClose   func(reason string)

	// client is the ClientLimiter's key for this session (zero: not
	// counted); set by the handshake before the session is published,
	// read-only after, handed back once by finish.
	client netip.Addr

	// tat is the packet rate limiter's state (GCRA: the theoretical
	// arrival time of the next packet, ns since srv.epoch): one int64,
	// no timer. Touched only by receive, which runs for one packet of a
	// session at a time.
	tat int64

	wake chan struct{} // polling: releases a waiting GET (buffered, 1); nil for WebSocket sessions

	// hb is the session's place on the server's heartbeat wheel
	// (heartbeat.go), guarded by the wheel's lock.
	hb hbState

	hs Handshake // by value: one allocation per session
}

// keepHeaders encodes what a session keeps of its handshake's headers
// (see Handshake.headers), at most budget bytes (names and values), and
// says how many it dropped.
// A byte cap rather than an allow-list: auth plugins and event rules may
// read any header (cookie, authorization, x-api-key, ...) and
// /api/v1/sockets shows them all as Node does; an allow-list would break
// them. Over the cap the largest headers go, whole (a truncated token is
// worse than none), so the small ones every client sends stay.
func keepHeaders(src http.Header, budget int) (string, int) {
	size := func(k string, v []string) int {
		n := len(k)
		for _, x := range v {
			n += len(x)
		}
		return n
	}
	total, kept, enc := 0, 0, 0
	for k, v := range src {
		if !droppedHeaders[k] {
			total += size(k, v)
			enc += (len(k) + 2) * len(v)
			kept++
		}
	}
	var b strings.Builder
	add := func(k string, v []string) {
		for _, x := range v {
			b.WriteString(k)
			b.WriteByte(0)
			b.WriteString(x)
			b.WriteByte(0)
		}
	}
	if total <= budget {
		b.Grow(total + enc)
		for k, v := range src {
			if !droppedHeaders[k] {
				add(k, v)
			}
		}
		return b.String(), 0
	}
	names := make([]string, 0, kept)
	for k := range src {
		if !droppedHeaders[k] {
			names = append(names, k)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(size(a, src[a]), size(b, src[b])), strings.Compare(a, b))
	})
	n := 0
	for _, k := range names {
		sz := size(k, src[k])
		if sz > budget {
			break
		}
		budget -= sz
		add(k, src[k])
		n++
	}
	return b.String(), len(names) - n
}

func newSession(srv *Server, id string, r *http.Request, isWS bool) *Session {
	uri := r.URL.RequestURI()
	h, dropped := keepHeaders(r.Header, srv.lim.Load().maxHandshakeBytes-len(uri))
	if dropped > 0 {
		srv.HeadersDropped.Add(int64(dropped))
	}
	addr := r.RemoteAddr
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	s := &Session{
		id:  id,
		srv: srv,
		hot: srv.hot.Load(),
		hs: Handshake{
			Time:    time.Now(),
			Address: addr,
			URL:     uri,
			headers: h,
			Secure:  r.TLS != nil,
		},
		onMessage: func(eiowire.Packet) {},
		onClose:   func(string) {},
	}
	if isWS {
		s.transport = transportWebSocket // so the handler sees it in Open
	} else {
		s.wake = make(chan struct{}, 1)
	}
	return s
}

// ID is the Engine.IO session id.
func (s *Session) ID() string { return s.id }

// Handshake returns the request data the session was opened with; it is
// part of the session and must not be changed.
func (s *Session) Handshake() *Handshake { return &s.hs }

// Transport names the current transport.
func (s *Session) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transport == transportWebSocket {
		return "websocket"
	}
	return "polling"
}

// SetHandler installs the callbacks for received messages and for the end of
// the session. Messages of one session are delivered one at a time.
func (s *Session) SetHandler(onMessage func(eiowire.Packet), onClose func(reason string)) {
	s.onMessage, s.onClose = onMessage, onClose
}

// startWebSocket runs on the handshake's goroutine: it writes the open
// packet itself and then reads the first packet (see wsTransport.read).
func (s *Session) startWebSocket(nc net.Conn, open *Message) {
	t := &s.ws
	s.mu.Lock()
	s.transport = transportWebSocket
	t.attachLocked(s, nc, readBuf{})
	s.queue = append([]*Message{open}, s.queue...)
	t.writing = true
	var batch []*Message
	if t.raw != nil {
		batch = s.takeLocked()
	} else {
		go t.writeFn()
	}
	s.mu.Unlock()
	s.startHeartbeat()
	if batch != nil {
		t.writeInline(s, batch)
	}
	t.read()
}

func (s *Session) startHeartbeat() {
	s.mu.Lock()
	if !s.closed {
		s.srv.heartbeatsFor().schedule(s, s.hot.PingInterval)
	}
	s.mu.Unlock()
}

// onHeartbeat alternates between sending a ping and checking that its pong
// arrived, on one deadline per session (heartbeat.go).
func (s *Session) onHeartbeat() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.awaitPong {
		s.mu.Unlock()
		s.closeNow(ReasonPingTimeout)
		return
	}
	s.awaitPong = true
	s.srv.heartbeatsFor().schedule(s, s.hot.PingTimeout)
	s.mu.Unlock()
	s.Send(msgPing)
}

// Send queues messages for the client, in order and contiguously (a packet
// and its binary attachments). It returns false when the session is closed
// or its queue is full; a full queue closes the session.
func (s *Session) Send(msgs ...*Message) bool { return s.send(msgs, nil) }

// send queues msgs; an idle WebSocket writes them at once (inline), or at
// b's Flush when b is given.
func (s *Session) send(msgs []*Message, b *Batch) bool {
	t := &s.ws
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if len(s.queue)+len(msgs) > s.srv.opts.SendQueue {
		s.mu.Unlock()
		s.srv.log.WithField("sid", s.id).Warn("send queue full: closing slow consumer")
		s.closeNow(ReasonSlowConsumer)
		return false
	}
	if t.raw != nil && !t.writing && len(s.queue) == 0 && b == nil && len(msgs) > 0 && len(msgs) <= maxDirect {
		// The common case, a broadcast's delivery to an idle WebSocket:
		// one system call, nothing queued (directLocked).
		return t.directLocked(s, msgs)
	}
	s.queue = append(s.queue, msgs...)
	if t.raw != nil && !t.writing {
		// The caller becomes the writer: now, or at b's Flush.
		t.writing = true
		if b != nil {
			s.mu.Unlock()
			b.held = append(b.held, s)
			return true
		}
		batch := s.takeLocked()
		s.mu.Unlock()
		t.writeInline(s, batch)
		return true
	}
	s.kickLocked()
	s.mu.Unlock()
	return true
}

// connClosedLocked reports whether closeCode has closed, or is about to
// close, the connection: closed without closing (Close's graceful end
// sets both and still writes what is queued). Inline writes check it
// under s.mu before writing the descriptor (wswrite.go).
func (s *Session) connClosedLocked() bool { return s.closed && !s.closing }

// flushHeld writes what queued while a Batch held the session (and with
// it the writer role).
func (s *Session) flushHeld() {
	s.mu.Lock()
	batch := s.takeLocked()
	s.mu.Unlock()
	s.ws.writeInline(s, batch)
}

// kickLocked makes the transport pick up the queue.
func (s *Session) kickLocked() {
	if s.transport == transportWebSocket {
		s.ws.kickLocked()
		return
	}
	s.wakeGet()
}

// takeLocked hands out the queued messages and gives the queue a fresh
// (recycled) backing array.
func (s *Session) takeLocked() []*Message {
	batch := s.queue
	s.queue = s.spare[:0]
	s.spare = nil
	return batch
}

func (s *Session) recycleLocked(batch []*Message) {
	clear(batch)
	if cap(batch) <= 64 {
		s.spare = batch[:0]
	}
}

// Close ends the session from the server side: queued packets are still
// delivered, then the transport is closed. The close handler runs at once.
func (s *Session) Close(reason string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.closing = true, true
	s.finished = true // not set before: closeCode sets it with closed
	ws := s.transport == transportWebSocket
	if !ws {
		s.queue = append(s.queue, msgClose)
	}
	s.kickLocked()
	s.mu.Unlock()
	s.finish(reason)
	if !ws {
		// A polling client that never comes back for its close packet.
		time.AfterFunc(s.hot.PingTimeout, func() { s.closeNow(reason) })
	}
}

// closeNow ends the session at once, dropping what is queued.
func (s *Session) closeNow(reason string) { s.close(reason, false) }

// close ends the session at once; readFailed says the WebSocket read
// failed, so no close frame is written.
func (s *Session) close(reason string, readFailed bool) {
	code := closeNormal
	if readFailed {
		code = 0
	}
	s.closeCode(reason, code)
}

// closeCode is close with the WebSocket close code to send (0: none).
func (s *Session) closeCode(reason string, code int) {
	s.mu.Lock()
	// The first to close names the reason: closing the socket below
	// makes the reader fail too, and it must not be the one reported.
	first := !s.finished
	if first {
		s.finished = true
		s.clientClosed = reason == ReasonTransportClose
	}
	s.closed = true
	s.closing = false
	attached := s.ws.nc != nil
	// A writer under way may have left half a frame on the wire; a close
	// frame after it would be garbage. And one close frame is the last
	// thing on the wire.
	if s.ws.writing || s.closeSent {
		code = 0
	}
	if code != 0 {
		s.closeSent = true
	}
	s.queue = nil
	s.wakeGet()
	s.mu.Unlock()
	if attached {
		s.ws.close(code)
	}
	if first {
		s.finish(reason)
	}
}

// finish unregisters the session and tells the handler; it runs once, on
// the goroutine that set finished.
func (s *Session) finish(reason string) {
	s.srv.heartbeatsFor().cancel(s)
	s.srv.remove(s)
	s.srv.leave(s.client)
	s.onClose(reason)
}

// receive handles one packet from the client, whichever transport carried it.
func (s *Session) receive(p eiowire.Packet) bool {
	switch p.Type {
	case eiowire.Message:
		if !s.allowPacket() {
			s.srv.RateLimited.Add(1)
			s.srv.log.WithField("sid", s.id).Debug("packet rate exceeded; closing session")
			s.closeNow(ReasonRateLimited)
			return false
		}
		s.onMessage(p)
	case eiowire.Pong:
		s.mu.Lock()
		if s.awaitPong && !s.closed {
			s.awaitPong = false
			s.srv.heartbeatsFor().schedule(s, s.hot.PingInterval)
		}
		s.mu.Unlock()
	case eiowire.Close:
		s.closeNow(ReasonTransportClose)
		return false
	default:
		// A client ping ("invalid heartbeat direction"), an upgrade on the
		// active transport, open or noop: all protocol errors.
		s.srv.log.WithField("sid", s.id).WithField("packet", p.Type.String()).Debug("unexpected packet; closing session")
		s.closeNow(ReasonParseError)
		return false
	}
	return true
}

// allowPacket takes a token from the session's bucket (GCRA): packets may
// arrive PacketBurst at once, and then at PacketRate per second.
func (s *Session) allowPacket() bool {
	lim := s.srv.lim.Load()
	every := lim.rateEvery
	if every == 0 {
		return true
	}
	now := int64(time.Since(s.srv.epoch))
	t := max(s.tat, now)
	if t-now > lim.rateSlack {
		return false
	}
	s.tat = t + every
	return true
}

// handleFrame handles one WebSocket message (opText or opBinary); false
// ends the reading. Not inlined: the idle reader's stack stays small (see
// wsread.go).
//
//go:noinline
func (s *Session) handleFrame(op byte, data []byte) bool {
	if op == opBinary {
		return s.receive(eiowire.Packet{Type: eiowire.Message, Data: data, Binary: true})
	}
	if !utf8.Valid(data) {
		// RFC 6455 8.1: fail the connection with 1007. Relayed, it would
		// make every client in the room fail its own connection instead.
		s.srv.InvalidUTF8.Add(1)
		s.closeCode(ReasonInvalidUTF8, closeInvalidPayload)
		return false
	}
	p, err := eiowire.DecodeText(data)
	if err != nil {
		s.closeNow(ReasonParseError)
		return false
	}
	return s.receive(p)
}
