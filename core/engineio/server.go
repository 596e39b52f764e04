// Package engineio is the Engine.IO v4 server: the WebSocket and HTTP
// long-polling transports, sessions, the polling→WebSocket upgrade and
// heartbeats. It hands whole Engine.IO messages to a Handler and knows
// nothing of Socket.IO.
package engineio

import (
	"crypto/rand"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Options configures a Server. Zero durations and sizes take Node's defaults.
type Options struct {
	PingInterval   time.Duration
	PingTimeout    time.Duration
	UpgradeTimeout time.Duration
	MaxPayload     int64
	AllowPolling   bool
	AllowWebSocket bool
	// SendQueue bounds the packets waiting for one session's transport; a
	// session whose queue is full is closed ("slow consumer") rather than
	// buffered without limit.
	SendQueue int

	// Limits against hostile clients (docs: config.hcl, server.limits).
	// PacketRate and PacketBurst bound the messages a session may send:
	// a token bucket, refilled at PacketRate per second up to PacketBurst;
	// a session that runs dry is closed (ReasonRateLimited). Negative
	// disables.
	PacketRate  float64
	PacketBurst int
	// BodyTimeout bounds the reading of one polling POST body; a body not
	// in by then gets 408 and its session is closed.
	BodyTimeout time.Duration
	// MaxHandshakeBytes caps what a session keeps of its handshake (the
	// request URI and the headers that survive droppedHeaders).
	MaxHandshakeBytes int

	AllowedOrigins []string // "*" allows any; empty allows same-origin and non-browser clients
	Credentials    bool
	SessionCookie  *Cookie // the "io" cookie carrying the sid
	InstanceCookie *Cookie // a cookie whose value names this instance
	InstanceID     string

	// Admit, when set, may refuse a new handshake (load shedding, draining):
	// it returns 0 to accept, or an HTTP status and a Retry-After in seconds.
	Admit func(r *http.Request) (status int, retryAfter int)
	// Clients, when set, limits sessions per client address: asked at
	// each handshake Admit accepted, after the server's own checks.
	Clients ClientLimiter

	Log *logrus.Entry
}

// ClientLimiter counts sessions per client. Enter returns the client's key
// (the zero Addr: not counted) or a refusal: an HTTP status and a
// Retry-After in seconds. Leave is called with a valid key exactly once per
// accepted Enter: when the session ends, or at once if the handshake fails
// after Enter. Both run on handshake and close paths only, never per packet.
type ClientLimiter interface {
	Enter(r *http.Request) (client netip.Addr, status int, retryAfter int)
	Leave(client netip.Addr)
}

// Cookie describes a cookie set on the handshake response.
type Cookie struct {
	Name     string
	Path     string
	HTTPOnly bool
	Secure   bool
	SameSite http.SameSite
	MaxAge   time.Duration
}

// Handler receives new sessions. Open runs before the open packet is sent; it
// must call s.SetHandler.
type Handler interface {
	Open(s *Session)
}

// Server is an http.Handler serving one Engine.IO endpoint.
type Server struct {
	opts    Options
	handler Handler
	log     *logrus.Entry
	writers sync.Pool // *wsWriter

	pollOnce   sync.Once
	poller     *poller[*wsTransport] // parks idle WebSocket readers; nil: not available
	beatOnce   sync.Once
	beats      *heartbeats // every session's heartbeat deadline (heartbeat.go)
	pollTokens atomic.Uint64
	hot        atomic.Pointer[live] // what a reload may change (live.go)

	mu       sync.RWMutex
	sessions map[string]*Session
	closing  bool

	// Errors counts refused requests by Engine.IO error code (see ErrorNames).
	Errors [len(errMessages)]atomic.Int64
	// Opened counts sessions opened.
	Opened atomic.Int64
	// RefusedDraining counts handshakes refused after StopAccepting.
	RefusedDraining atomic.Int64
	// Limits hit (Options): sessions closed for exceeding the packet
	// rate, for invalid UTF-8 in a text frame or polling body, polling
	// bodies that did not arrive within BodyTimeout, and handshake
	// headers dropped over MaxHandshakeBytes.
	RateLimited    atomic.Int64
	InvalidUTF8    atomic.Int64
	BodyTimeouts   atomic.Int64
	HeadersDropped atomic.Int64

	epoch time.Time                    // the rate limiter's clock starts here (monotonic)
	lim   atomic.Pointer[clientLimits] // SetLimits; read per packet and per request
}

// Defaults of the limits in Options.
const (
	DefaultPacketRate        = 100
	DefaultPacketBurst       = 200
	DefaultBodyTimeout       = 10 * time.Second
	DefaultMaxHandshakeBytes = 8 << 10
)

// ErrorNames are metric label values for Server.Errors, by code.
var ErrorNames = [...]string{"transport_unknown", "session_id_unknown", "bad_handshake_method", "bad_request", "forbidden", "unsupported_protocol_version"}

// NewServer returns a Server that hands its sessions to h.
func NewServer(opts Options, h Handler) *Server {
	if opts.PingInterval <= 0 {
		opts.PingInterval = 25 * time.Second
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = 20 * time.Second
	}
	if opts.UpgradeTimeout <= 0 {
		opts.UpgradeTimeout = 10 * time.Second
	}
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = 1e6
	}
	if opts.SendQueue <= 0 {
		opts.SendQueue = 1024
	}
	if !opts.AllowPolling && !opts.AllowWebSocket {
		opts.AllowPolling, opts.AllowWebSocket = true, true
	}
	if opts.Log == nil {
		opts.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	s := &Server{opts: opts, handler: h, log: opts.Log, sessions: make(map[string]*Session), epoch: time.Now()}
	s.SetLimits(Limits{PacketRate: opts.PacketRate, PacketBurst: opts.PacketBurst,
		BodyTimeout: opts.BodyTimeout, MaxHandshakeBytes: opts.MaxHandshakeBytes})
	s.writers.New = newWSWriter
	s.SetLive(Live{AllowedOrigins: opts.AllowedOrigins, Credentials: opts.Credentials, SessionCookie: opts.SessionCookie,
		InstanceCookie: opts.InstanceCookie, PingInterval: opts.PingInterval, PingTimeout: opts.PingTimeout})
	return s
}

// Options returns the effective options (defaults filled in), with the
// limits in force now (SetLimits).
func (s *Server) Options() Options {
	o := s.opts
	l := s.lim.Load().Limits
	o.PacketRate, o.PacketBurst, o.BodyTimeout, o.MaxHandshakeBytes = l.PacketRate, l.PacketBurst, l.BodyTimeout, l.MaxHandshakeBytes
	return o
}

// Count returns the number of open sessions.
func (s *Server) Count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.sessions)
}

// Engine.IO error codes, as the protocol numbers them.
const (
	errTransportUnknown   = 0
	errUnknownSID         = 1
	errBadHandshakeMethod = 2
	errBadRequest         = 3
	errForbidden          = 4
	errUnsupportedVersion = 5
)

var errMessages = [...]string{
	"Transport unknown",
	"Session ID unknown",
	"Bad handshake method",
	"Bad request",
	"Forbidden",
	"Unsupported protocol version",
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, code int) {
	s.Errors[code].Add(1)
	status := http.StatusBadRequest
	if code == errForbidden {
		status = http.StatusForbidden
	}
	if isWebSocket(r) {
		// Node answers a refused WebSocket upgrade with a bare status line and
		// the message as text.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(errMessages[code]))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"code":` + strconv.Itoa(code) + `,"message":"` + errMessages[code] + `"}`))
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// ServeHTTP dispatches handshakes, polling requests and WebSocket upgrades.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin != "" {
		hot := s.hot.Load()
		if !originAllowed(hot.AllowedOrigins, origin, r.Host) {
			s.writeError(w, r, errForbidden)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		if hot.Credentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
	}
	if r.Method == http.MethodOptions {
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "GET, POST")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}

	q := r.URL.Query()
	transport := q.Get("transport")
	isWS := transport == "websocket"
	if (transport != "polling" && !isWS) || (isWS && !s.opts.AllowWebSocket) ||
		(!isWS && !s.opts.AllowPolling) {
		s.writeError(w, r, errTransportUnknown)
		return
	}
	sid := q.Get("sid")
	if sid == "" {
		if q.Get("EIO") != "4" {
			s.writeError(w, r, errUnsupportedVersion)
			return
		}
		if r.Method != http.MethodGet {
			s.writeError(w, r, errBadHandshakeMethod)
			return
		}
		if isWS && !isWebSocket(r) {
			s.writeError(w, r, errBadRequest)
			return
		}
		s.handshake(w, r, isWS)
		return
	}

	sess := s.session(sid)
	if sess == nil {
		s.writeError(w, r, errUnknownSID)
		return
	}
	if isWS {
		if !isWebSocket(r) || r.Method != http.MethodGet {
			s.writeError(w, r, errBadRequest)
			return
		}
		sess.serveUpgrade(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet:
		sess.servePollGet(w, r)
	case http.MethodPost:
		sess.servePollPost(w, r)
	default:
		s.writeError(w, r, errBadRequest)
	}
}

func originAllowed(allowed []string, origin, host string) bool {
	for _, o := range allowed {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	if len(allowed) == 0 {
		// Same-origin only.
		if u, err := url.Parse(origin); err == nil && strings.EqualFold(u.Host, host) {
			return true
		}
	}
	return false
}

func (s *Server) session(sid string) *Session {
	s.mu.RLock()
	sess := s.sessions[sid]
	s.mu.RUnlock()
	return sess
}

// newID returns a 20-character URL-safe random id, the length Socket.IO's
// base64id has (the sharded Redis adapter tells socket ids by it).
func newID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// NewID returns a fresh 20-character id (exported for Socket.IO socket ids).
func NewID() string { return newID() }

func (s *Server) handshake(w http.ResponseWriter, r *http.Request, isWS bool) {
	if s.opts.Admit != nil {
		if status, retry := s.opts.Admit(r); status != 0 {
			if retry > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(retry))
			}
			http.Error(w, http.StatusText(status), status)
			return
		}
	}
	s.mu.RLock()
	closing := s.closing
	s.mu.RUnlock()
	if closing {
		s.RefusedDraining.Add(1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}

	if len(r.RequestURI) > s.lim.Load().maxHandshakeBytes {
		// The session would keep it for its whole life.
		http.Error(w, "URI Too Long", http.StatusRequestURITooLong)
		return
	}
	var client netip.Addr
	if s.opts.Clients != nil {
		var status, retry int
		client, status, retry = s.opts.Clients.Enter(r)
		if status != 0 {
			if retry > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(retry))
			}
			http.Error(w, http.StatusText(status), status)
			return
		}
	}
	sess := newSession(s, newID(), r, isWS)
	sess.client = client
	hdr := w.Header()
	s.setCookies(hdr, sess.id)

	var nc net.Conn
	if isWS {
		var err error
		nc, err = s.upgrade(w, r, hdr)
		if err != nil {
			s.log.WithError(err).Debug("websocket handshake failed")
			s.leave(client)
			return
		}
	}

	s.mu.Lock()
	s.sessions[sess.id] = sess
	s.mu.Unlock()
	s.Opened.Add(1)

	s.handler.Open(sess)

	upgrades := `["websocket"]`
	if isWS || !s.opts.AllowWebSocket {
		upgrades = `[]`
	}
	open := make([]byte, Headroom, Headroom+64+len(sess.hot.openJSON))
	open = append(open, `0{"sid":"`...)
	open = append(open, sess.id...)
	open = append(open, `","upgrades":`...)
	open = append(open, upgrades...)
	open = append(open, sess.hot.openJSON...)

	if isWS {
		sess.startWebSocket(nc, NewFramed(open, false)) // returns when the connection ends
		return
	}
	// Polling: the handshake response carries the open packet only.
	sess.startPolling()
	writePollResponse(w, open[Headroom:])
}

func (s *Server) setCookies(h http.Header, sid string) {
	hot := s.hot.Load()
	if c := hot.SessionCookie; c != nil {
		h.Add("Set-Cookie", cookieString(c, sid))
	}
	if c := hot.InstanceCookie; c != nil {
		h.Add("Set-Cookie", cookieString(c, s.opts.InstanceID))
	}
}

func cookieString(c *Cookie, value string) string {
	ck := http.Cookie{Name: c.Name, Value: value, Path: c.Path, HttpOnly: c.HTTPOnly, Secure: c.Secure, SameSite: c.SameSite}
	if ck.Path == "" {
		ck.Path = "/"
	}
	if c.MaxAge > 0 {
		ck.MaxAge = int(c.MaxAge / time.Second)
	}
	return ck.String()
}

// leave tells the ClientLimiter that a session it counted is over.
func (s *Server) leave(client netip.Addr) {
	if client.IsValid() && s.opts.Clients != nil {
		s.opts.Clients.Leave(client)
	}
}

func (s *Server) remove(sess *Session) {
	s.mu.Lock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
	}
	s.mu.Unlock()
}

// Sessions returns a snapshot of the open sessions.
func (s *Server) Sessions() []*Session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		out = append(out, sess)
	}
	return out
}

// StopAccepting makes new handshakes answer 503 from now on.
func (s *Server) StopAccepting() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
}

// Close closes every session with the given reason.
func (s *Server) Close(reason string) {
	s.StopAccepting()
	for _, sess := range s.Sessions() {
		sess.Close(reason)
	}
	s.pollOnce.Do(func() {}) // no poller after this
	if s.poller != nil {
		s.poller.close()
	}
	s.beatOnce.Do(func() {}) // no wheel after this
	if s.beats != nil {
		s.beats.close()
	}
}

// heartbeatsFor returns the heartbeat wheel, started on first use; nil
// once the server is closed (no session is scheduled then: Close closed
// them all).
func (s *Server) heartbeatsFor() *heartbeats {
	s.beatOnce.Do(func() { s.beats = newHeartbeats(s.opts.PingInterval, s.opts.PingTimeout) })
	return s.beats
}

// pollerFor returns the server's poller, started on first use.
func (s *Server) pollerFor() *poller[*wsTransport] {
	s.pollOnce.Do(func() { s.poller = newPoller[*wsTransport]() })
	return s.poller
}
