// Package config is the schema of config.hcl: it parses the file, reports
// problems as HCL diagnostics with file:line:col, and hands the rest of the
// core plain Go values. Event rules decode into steps: each action
// (action_*.go) holds its schema, decoding, checks and run step, and runs
// against the Socket interface that core/routing implements.
package config

import (
	"net/netip"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Config is a whole, validated config.hcl.
type Config struct {
	Filename   string
	Server     Server
	Namespaces []*Namespace   // in file order; "/" is always present (added if not declared)
	Plugins    []*PluginBlock // auth, adapter, sharding, metrics, log_sink blocks in file order
	Admin      *Admin         // the Admin UI's namespace; nil = off
}

// Namespace returns the declared namespace with that name, or nil.
func (c *Config) Namespace(name string) *Namespace {
	for _, n := range c.Namespaces {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Server holds the transport-level settings of one instance.
type Server struct {
	Listen         string        // "host:port"; default ":8081", LISTEN_ADDR when set
	Path           string        // Socket.IO endpoint, default "/socket.io/" (always with leading and trailing slash)
	EngineIOEcho   string        // optional raw Engine.IO echo endpoint path ("" = off), e.g. "/engine.io/"
	Transports     []string      // subset of "polling", "websocket"; default both
	PingInterval   time.Duration // default 25s
	PingTimeout    time.Duration // default 20s
	UpgradeTimeout time.Duration // default 10s
	ConnectTimeout time.Duration // default 45s
	AckTimeout     time.Duration // default timeout of server->client acks, default 10s
	MaxPayload     int64         // bytes, default 1MB (1e6 like Node's maxHttpBufferSize)
	MaxAttachments int           // binary attachments per packet, default 10
	SendQueue      int           // packets queued per connection before it is closed as a slow consumer, default 1024

	CORS           CORS
	SessionCookie  *Cookie // the optional "io" cookie carrying the sid; nil = off
	InstanceCookie *Cookie // optional cookie naming the instance, value = InstanceID; nil = off
	InstanceID     string  // INSTANCE_ID or config; else generated "instance-" + 8 hex

	PluginDir string // where plugin binaries are looked up, default "bin/plugins"

	API *API // the HTTP API for backends; nil = off

	Drain                Drain
	LoadShedding         *LoadShedding // nil = off
	MemoryReportInterval time.Duration // periodic memory log line; 0 = off, default 60s

	LogLevel  string // "info" default, LOG_LEVEL overrides
	LogFormat string // "json" (default) | "text"

	Limits Limits // against hostile clients: the limits block

	Recovery *Recovery // connection state recovery; nil = off

	TLS    *TLS   // HTTPS and WebSocket over TLS on the listeners; nil = plain HTTP
	Reload Reload // the reload block: reloading on file change
}

// Limits bound what one client can make an instance hold or do (the
// server block's limits block; defaults in DefaultLimits).
type Limits struct {
	PacketRate        int           // packets per second per connection; 0 = off
	PacketBurst       int           // packets at once over the rate
	MaxRooms          int           // rooms per socket
	AttachmentTimeout time.Duration // for a binary packet's attachments
	BodyTimeout       time.Duration // for a polling POST body
	MaxHeadBytes      int64         // request line and headers
	MaxHandshakeBytes int64         // of its handshake a session keeps
	IdleTimeout       time.Duration // keep-alive HTTP connections

	// Per client address (an IPv4 address, or an IPv6 /64): concurrent
	// Engine.IO sessions, and new sessions per second with a burst (a
	// token bucket); 0 = off. Over either the handshake gets 429.
	MaxConnectionsPerIP int
	HandshakeRatePerIP  int
	HandshakeBurstPerIP int
	// PerIPExempt: client addresses (CIDRs) no per-IP limit applies to;
	// default loopback.
	PerIPExempt []netip.Prefix
	// MaxTrackedIPs bounds the per-IP table; full, a handshake from an
	// address not in it gets 503.
	MaxTrackedIPs int
	// TrustedProxyHeader names the header (X-Forwarded-For) the client
	// address is read from; "" = the TCP peer, never a header.
	// TrustedProxies: peers (CIDRs) whose header is believed, and entries
	// skipped from the right; empty = every peer.
	TrustedProxyHeader string
	TrustedProxies     []netip.Prefix
}

// CORS configures cross-origin polling requests and the WebSocket Origin check.
type CORS struct {
	AllowedOrigins []string // exact origins or "*"; empty = same-origin and non-browser clients only
	Credentials    bool
}

// Cookie configures a cookie the handshake sets.
type Cookie struct {
	Name     string
	Path     string // default "/"
	HTTPOnly bool   // default true
	Secure   bool
	SameSite string        // "lax" (default) | "strict" | "none"
	MaxAge   time.Duration // 0 = session cookie
}

// API is the `api { ... }` block of the server block: an HTTP API under
// /api/v1/ for backends, on the main listener.
type API struct {
	Token string // bearer token, at least MinAPITokenLength characters
	// RedactAuth names top-level CONNECT payload fields no socket keeps
	// (secrets), besides those the auth plugin names.
	RedactAuth []string
	DeclRange  hcl.Range
}

// MinAPITokenLength is the shortest API token accepted.
const MinAPITokenLength = 16

// Namespace is a `namespace "/name" { ... }` block.
type Namespace struct {
	Name          string
	UnknownEvents string // "drop" (default; counted) | "disconnect"
	OnConnect     []*Emit
	Events        map[string]*EventRule // by event name
	// ServerEvents say what this instance does with server-side emits
	// (from event rules' server_emit, the HTTP API, or Node servers on the
	// same adapter), by event name; others are ignored and counted.
	ServerEvents map[string]*ServerEvent
	DeclRange    hcl.Range
}

// ServerEvent is a `server_event "name" { ... }` block. Its expressions see
// only `args` (the emit's arguments).
type ServerEvent struct {
	Name string
	// Broadcasts go to this instance's sockets only: every instance gets the
	// server-side emit itself.
	Broadcasts []*ServerBroadcast
	// Ack is the acknowledgement argument (one value) when the sender wants
	// one; nil = null.
	Ack       hcl.Expression
	DeclRange hcl.Range
}

// Emit is an on_connect `emit "event" { args = [...] }` block.
type Emit struct {
	Event string
	Args  Args
}

// Args is a list of values computed per use. When Passthrough is true the
// received arguments are sent on unchanged (byte-exact, binary included) and
// Expr is nil; otherwise Expr evaluates to a tuple/list whose elements become
// the arguments.
type Args struct {
	Passthrough bool
	Expr        hcl.Expression
}

// ServerBroadcast is a server_event's `broadcast { ... }` block: a relay to
// this instance's sockets in rooms.
type ServerBroadcast struct {
	To    hcl.Expression // room name or list of names; omitted = whole namespace
	Event string         // default: the server event's name
	Args  Args           // default: passthrough
}
