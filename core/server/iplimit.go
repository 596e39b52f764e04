package server

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// IPLimits bound what one client address may open (config.hcl:
// server.limits, the *_per_ip attributes). Zero values turn a limit off.
type IPLimits struct {
	MaxConnections int     // concurrent Engine.IO sessions per address
	HandshakeRate  float64 // new sessions per second per address (a token bucket)
	HandshakeBurst int     // and how many at once
	Exempt         []netip.Prefix
	MaxTracked     int // addresses in the table; full: 503 for new ones
	// ProxyHeader, when set, is where the client address is read
	// (X-Forwarded-For); Proxies are the peers whose header is believed
	// and the entries skipped from the right (empty: every peer).
	ProxyHeader string
	Proxies     []netip.Prefix
}

// ipLimiter is the engineio.ClientLimiter of an instance: a table of
// client addresses, each with its sessions and handshake bucket, under one
// mutex taken once per handshake and once per session end; nothing per
// message.
type ipLimiter struct {
	cur      atomic.Pointer[ipConfig] // set replaces it (a reload); counts stay
	epoch    time.Time
	now      func() int64 // ns since epoch; tests replace it
	sweepGap int64

	mu        sync.Mutex
	table     map[netip.Addr]*ipEntry
	lastSweep int64

	// Refused handshakes, by cause.
	overConnections atomic.Int64
	overRate        atomic.Int64
	tableFull       atomic.Int64
}

// ipConfig is one version of IPLimits with what is derived from it.
type ipConfig struct {
	lim    IPLimits
	header string // canonical form of lim.ProxyHeader
	every  int64  // ns per handshake at HandshakeRate; 0: no rate limit
	slack  int64  // how far ahead of now a bucket may run: the burst
}

type ipEntry struct {
	sessions int
	tat      int64 // GCRA: theoretical arrival time of the next handshake (ns since epoch)
}

// sweepEvery: how often the table is cleared of addresses with no session
// and a full bucket (at handshakes; at most this often, or when full at
// most every tenth of it).
const sweepEvery = 10 * time.Second

func newIPLimiter(lim IPLimits) *ipLimiter {
	l := &ipLimiter{epoch: time.Now(), table: map[netip.Addr]*ipEntry{}, sweepGap: int64(sweepEvery)}
	l.now = func() int64 { return int64(time.Since(l.epoch)) }
	l.set(lim)
	return l
}

// set replaces the limits (a reload): each address's sessions and bucket
// carry over, held to the new bounds from its next handshake on (an
// address above a lowered MaxConnections keeps its sessions; a bucket
// that ran ahead under a higher rate waits until it is within the new
// burst). With every limit off, handshakes are not counted at all.
func (l *ipLimiter) set(lim IPLimits) {
	if lim.MaxTracked <= 0 {
		lim.MaxTracked = 100000
	}
	c := &ipConfig{lim: lim}
	if lim.ProxyHeader != "" {
		c.header = http.CanonicalHeaderKey(lim.ProxyHeader)
	}
	if lim.HandshakeRate > 0 {
		c.every = int64(float64(time.Second) / lim.HandshakeRate)
		c.slack = int64(max(lim.HandshakeBurst, 1)) * c.every
	}
	l.cur.Store(c)
}

// enabled: some limit applies.
func (lim IPLimits) enabled() bool { return lim.MaxConnections > 0 || lim.HandshakeRate > 0 }

// Enter counts a handshake of r's client: its key, or a refusal.
func (l *ipLimiter) Enter(r *http.Request) (netip.Addr, int, int) {
	c := l.cur.Load()
	if !c.lim.enabled() {
		return netip.Addr{}, 0, 0
	}
	addr, ok := c.clientAddr(r)
	if !ok || c.exempt(addr) {
		return netip.Addr{}, 0, 0
	}
	addr = ipKey(addr)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.table[addr]
	if e == nil {
		if len(l.table) >= c.lim.MaxTracked && now-l.lastSweep >= l.sweepGap/10 {
			l.sweepLocked(now)
		}
		if len(l.table) >= c.lim.MaxTracked {
			l.tableFull.Add(1)
			return netip.Addr{}, http.StatusServiceUnavailable, 5
		}
		if now-l.lastSweep >= l.sweepGap {
			l.sweepLocked(now)
		}
		e = &ipEntry{tat: now}
		l.table[addr] = e
	}
	if c.lim.MaxConnections > 0 && e.sessions >= c.lim.MaxConnections {
		l.overConnections.Add(1)
		return netip.Addr{}, http.StatusTooManyRequests, 5
	}
	if c.every > 0 {
		tat := max(e.tat, now) + c.every
		if tat-now > c.slack {
			l.overRate.Add(1)
			wait := tat - now - c.slack
			return netip.Addr{}, http.StatusTooManyRequests, int((wait + int64(time.Second) - 1) / int64(time.Second))
		}
		e.tat = tat
	}
	e.sessions++
	return addr, 0, 0
}

// Leave ends a session Enter counted.
func (l *ipLimiter) Leave(addr netip.Addr) {
	l.mu.Lock()
	if e := l.table[addr]; e != nil {
		e.sessions--
		if e.sessions <= 0 && e.tat <= l.now() {
			delete(l.table, addr)
		}
	}
	l.mu.Unlock()
}

// sweepLocked drops the addresses with no session and a full bucket.
func (l *ipLimiter) sweepLocked(now int64) {
	l.lastSweep = now
	for a, e := range l.table {
		if e.sessions <= 0 && e.tat <= now {
			delete(l.table, a)
		}
	}
}

// tracked is the number of addresses in the table.
func (l *ipLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.table)
}

func (c *ipConfig) exempt(a netip.Addr) bool {
	for _, p := range c.lim.Exempt {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (c *ipConfig) trusted(a netip.Addr) bool {
	for _, p := range c.lim.Proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ipKey is what the table counts by: an IPv4 address, or an IPv6
// address's /64 (one host usually holds a whole /64).
func ipKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// clientAddr is the address r comes from: the TCP peer, or, with a
// ProxyHeader and a peer in Proxies (any peer when Proxies is empty), the
// right-most entry of the header that is not in Proxies (the left-most if
// all are). An entry that does not parse ends the walk: the entry to its
// right (or the peer) is the client. Never allocates.
func (c *ipConfig) clientAddr(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	client := ap.Addr().Unmap().WithZone("") // a zoned address matches no prefix
	if c.header == "" || (len(c.lim.Proxies) > 0 && !c.trusted(client)) {
		return client, true
	}
	vals := r.Header[c.header]
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			entry := v
			if c := strings.LastIndexByte(v, ','); c >= 0 {
				entry, v = v[c+1:], v[:c]
			} else {
				v = ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			a, ok := parseForwarded(entry)
			if !ok {
				return client, true
			}
			client = a
			if len(c.lim.Proxies) == 0 || !c.trusted(a) {
				return client, true
			}
		}
	}
	return client, true
}

// parseForwarded reads one header entry: an address, with or without a
// port ("1.2.3.4", "1.2.3.4:5678", "2001:db8::1", "[2001:db8::1]:443").
func parseForwarded(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}
