package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Per-IP limits (issue 13): a client address over its sessions or its
// handshake rate gets 429 on the handshake, polling and WebSocket alike,
// while other addresses connect and a normal room chats on. The tests use
// other loopback addresses (127.0.0.2, ...) as other clients, with the
// loopback exemption off.

// fromAddr dials from the loopback address local.
func fromAddr(local string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 3 * time.Second}
	return d.DialContext
}

// wsFrom opens a WebSocket handshake from local; the status on refusal.
func wsFrom(t *testing.T, local, addr string, hdr http.Header) (*wsClient, int) {
	t.Helper()
	d := websocket.Dialer{NetDialContext: fromAddr(local), HandshakeTimeout: 3 * time.Second}
	c, res, err := d.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", hdr)
	if err != nil {
		if res == nil {
			t.Fatalf("dial from %s: %v", local, err)
		}
		return nil, res.StatusCode
	}
	t.Cleanup(func() { c.Close() })
	w := &wsClient{t, c}
	if open := w.read(); !strings.HasPrefix(open, `0{"sid":"`) {
		t.Fatalf("open packet %q", open)
	}
	return w, http.StatusOK
}

// pollFrom makes a polling handshake from local: its status and Retry-After.
func pollFrom(t *testing.T, local, addr string, hdr http.Header) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: fromAddr(local), DisableKeepAlives: true}, Timeout: 3 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/socket.io/?EIO=4&transport=polling", nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("poll from %s: %v", local, err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Retry-After")
}

// TestConnectionsPerIP: 127.0.0.2 holds its 3 sessions; a fourth, by
// WebSocket or polling, gets 429, while 127.0.0.3 and the chatting room
// (127.0.0.1) connect. When one of its sessions ends, 127.0.0.2 may open
// one again.
func TestConnectionsPerIP(t *testing.T) {
	srv, _ := newLimitedInstance(t, hostileConfig, Limits{PerIP: IPLimits{MaxConnections: 3}})
	addr := serveLimited(t, srv)
	room := newChatters(t, "http://"+addr)
	room.chat(5)

	var held []*wsClient
	for i := range 3 {
		w, status := wsFrom(t, "127.0.0.2", addr, nil)
		if status != http.StatusOK {
			t.Fatalf("session %d of 127.0.0.2: %d", i, status)
		}
		held = append(held, w)
	}
	if _, status := wsFrom(t, "127.0.0.2", addr, nil); status != http.StatusTooManyRequests {
		t.Fatalf("4th WebSocket session of 127.0.0.2: %d, want 429", status)
	}
	if status, retry := pollFrom(t, "127.0.0.2", addr, nil); status != http.StatusTooManyRequests || retry == "" {
		t.Fatalf("4th (polling) session of 127.0.0.2: %d, Retry-After %q; want 429 with Retry-After", status, retry)
	}
	room.chat(5)
	for i := range 3 {
		if _, status := wsFrom(t, "127.0.0.3", addr, nil); status != http.StatusOK {
			t.Fatalf("session %d of 127.0.0.3: %d", i, status)
		}
	}
	if got := srv.limitsHit()["connections_per_ip"]; got != 2 {
		t.Fatalf("limits_hit connections_per_ip = %d, want 2", got)
	}
	snap := srv.snapshot()
	for _, m := range []struct {
		name string
		kv   []string
		want float64
	}{
		{"socket_limits_hit_total", []string{"limit", "connections_per_ip"}, 2},
		{"socket_handshake_failures_total", []string{"reason", "per_ip_limit"}, 2},
		{"socket_per_ip_tracked_addresses", nil, 3}, // 127.0.0.1 (the room, loopback not exempt here), .2, .3
	} {
		if got, ok := sample(snap, m.name, m.kv...); !ok || got != m.want {
			t.Fatalf("%s%v = %v (found %v), want %v", m.name, m.kv, got, ok, m.want)
		}
	}

	held[0].c.Close() // the server sees the close and gives the slot back
	deadline := time.Now().Add(3 * time.Second)
	for {
		w, status := wsFrom(t, "127.0.0.2", addr, nil)
		if status == http.StatusOK {
			w.send("40") // and it works
			if reply := w.read(); !strings.HasPrefix(reply, `40{"sid":"`) {
				t.Fatalf("CONNECT reply %q", reply)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("127.0.0.2 still refused (%d) after one of its sessions ended", status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	room.chat(10)
}

// fakeClock replaces the limiter's clock.
func fakeClock(l *ipLimiter) *atomic.Int64 {
	var now atomic.Int64
	now.Store(int64(time.Hour))
	l.now = now.Load
	return &now
}

// TestHandshakeRatePerIP: 2 handshakes a second, 3 at once. The burst
// passes, the next gets 429 with Retry-After, another address is not
// affected, and the bucket refills with time.
func TestHandshakeRatePerIP(t *testing.T) {
	srv, _ := newLimitedInstance(t, hostileConfig, Limits{PerIP: IPLimits{HandshakeRate: 2, HandshakeBurst: 3}})
	now := fakeClock(srv.ipLimit)
	addr := serveLimited(t, srv)
	want := func(local string, wantStatus int, what string) {
		t.Helper()
		if status, retry := pollFrom(t, local, addr, nil); status != wantStatus {
			t.Fatalf("%s: handshake from %s: %d, want %d", what, local, status, wantStatus)
		} else if status == http.StatusTooManyRequests && retry != "1" {
			t.Fatalf("%s: Retry-After %q, want 1", what, retry)
		}
	}
	for i := range 3 {
		want("127.0.0.2", http.StatusOK, fmt.Sprintf("burst %d", i))
	}
	want("127.0.0.2", http.StatusTooManyRequests, "over the burst")
	if _, status := wsFrom(t, "127.0.0.2", addr, nil); status != http.StatusTooManyRequests {
		t.Fatalf("WebSocket over the burst: %d, want 429", status)
	}
	want("127.0.0.3", http.StatusOK, "another address")
	now.Add(int64(500 * time.Millisecond)) // one token back
	want("127.0.0.2", http.StatusOK, "refilled")
	want("127.0.0.2", http.StatusTooManyRequests, "empty again")
	now.Add(int64(1500 * time.Millisecond)) // the whole burst back
	for i := range 3 {
		want("127.0.0.2", http.StatusOK, fmt.Sprintf("burst again %d", i))
	}
	if got := srv.limitsHit()["handshake_rate_per_ip"]; got != 3 {
		t.Fatalf("limits_hit handshake_rate_per_ip = %d, want 3", got)
	}
}

// TestTrustedProxyHeader: the client address comes from X-Forwarded-For
// only when trusted_proxy_header is set, from a trusted peer, as the
// right-most entry that is not a trusted proxy.
func TestTrustedProxyHeader(t *testing.T) {
	xff := func(v ...string) http.Header { return http.Header{"X-Forwarded-For": v} }

	// Not configured: the header is never believed; the peer counts.
	srv, _ := newLimitedInstance(t, hostileConfig, Limits{PerIP: IPLimits{MaxConnections: 1}})
	addr := serveLimited(t, srv)
	if status, _ := pollFrom(t, "127.0.0.2", addr, xff("203.0.113.1")); status != http.StatusOK {
		t.Fatalf("first: %d", status)
	}
	if status, _ := pollFrom(t, "127.0.0.2", addr, xff("203.0.113.2")); status != http.StatusTooManyRequests {
		t.Fatalf("a forged X-Forwarded-For without trusted_proxy_header: %d, want 429", status)
	}

	// Configured, the proxy being 127.0.0.2: clients are told apart by
	// the header, from that peer only.
	srv, _ = newLimitedInstance(t, hostileConfig, Limits{PerIP: IPLimits{MaxConnections: 1,
		ProxyHeader: "x-forwarded-for", Proxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("10.0.0.0/8")}}})
	addr = serveLimited(t, srv)
	for _, c := range []struct {
		local  string
		header http.Header
		want   int
	}{
		{"127.0.0.2", xff("203.0.113.1"), http.StatusOK},
		{"127.0.0.2", xff("203.0.113.1"), http.StatusTooManyRequests},
		{"127.0.0.2", xff("203.0.113.2"), http.StatusOK},
		// The left entry is the client's to forge; 10.1.2.3 is a trusted hop.
		{"127.0.0.2", xff("198.51.100.7, 203.0.113.1, 10.1.2.3"), http.StatusTooManyRequests},
		{"127.0.0.2", xff("203.0.113.1", "10.1.2.3"), http.StatusTooManyRequests}, // two header lines
		{"127.0.0.2", xff("203.0.113.9", "garbage"), http.StatusOK},               // unreadable: the peer, 127.0.0.2, counts
		{"127.0.0.2", xff("203.0.113.3:4711"), http.StatusOK},
		{"127.0.0.2", nil, http.StatusTooManyRequests}, // no header: the peer again
		// 127.0.0.3 is no trusted proxy: its header is ignored.
		{"127.0.0.3", xff("203.0.113.4"), http.StatusOK},
		{"127.0.0.3", xff("203.0.113.5"), http.StatusTooManyRequests},
	} {
		if status, _ := pollFrom(t, c.local, addr, c.header); status != c.want {
			t.Fatalf("from %s with %v: %d, want %d", c.local, c.header, status, c.want)
		}
	}

	// WebSocket through the same rule.
	if _, status := wsFrom(t, "127.0.0.2", addr, xff("203.0.113.2")); status != http.StatusTooManyRequests {
		t.Fatalf("WebSocket as 203.0.113.2 (already has a session): %d, want 429", status)
	}
	if _, status := wsFrom(t, "127.0.0.2", addr, xff("203.0.113.6")); status != http.StatusOK {
		t.Fatalf("WebSocket as 203.0.113.6: %d, want 200", status)
	}
}

// TestClientAddr: the address rule alone, IPv6 included.
func TestClientAddr(t *testing.T) {
	req := func(peer string, xff ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = peer
		if xff != nil {
			r.Header["X-Forwarded-For"] = xff
		}
		return r
	}
	none := newIPLimiter(IPLimits{MaxConnections: 1})
	anyPeer := newIPLimiter(IPLimits{MaxConnections: 1, ProxyHeader: "X-Forwarded-For"})
	some := newIPLimiter(IPLimits{MaxConnections: 1, ProxyHeader: "X-Forwarded-For",
		Proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}})
	for _, c := range []struct {
		l    *ipLimiter
		r    *http.Request
		want string
	}{
		{none, req("192.0.2.1:1234", "203.0.113.1"), "192.0.2.1"},
		{none, req("[::ffff:192.0.2.1]:1234"), "192.0.2.1"},
		{anyPeer, req("192.0.2.1:1234", "198.51.100.1, 203.0.113.1"), "203.0.113.1"},
		{anyPeer, req("192.0.2.1:1234"), "192.0.2.1"},
		{anyPeer, req("192.0.2.1:1234", " , "), "192.0.2.1"},
		{some, req("192.0.2.1:1234", "203.0.113.1"), "192.0.2.1"},
		{some, req("10.0.0.1:1234", "203.0.113.1, 10.9.9.9"), "203.0.113.1"},
		{some, req("10.0.0.1:1234", "10.2.2.2, 10.9.9.9"), "10.2.2.2"},
		{some, req("[fd00::1]:1234", "[2001:db8::7]:443"), "2001:db8::7"},
		{some, req("10.0.0.1:1234", "::ffff:203.0.113.1"), "203.0.113.1"},
		{some, req("[fd00::1%eth0]:1234", "203.0.113.1"), "203.0.113.1"}, // a zoned peer is still trusted
	} {
		got, ok := c.l.cur.Load().clientAddr(c.r)
		if !ok || got.String() != c.want {
			t.Errorf("%s %v: %v, want %s", c.r.RemoteAddr, c.r.Header["X-Forwarded-For"], got, c.want)
		}
	}
	if k := ipKey(netip.MustParseAddr("2001:db8:1:2:aaaa::1")); k.String() != "2001:db8:1:2::" {
		t.Errorf("IPv6 key %v, want its /64", k)
	}
	r := req("10.0.0.1:1234", "203.0.113.1, 10.9.9.9")
	if a := testing.AllocsPerRun(100, func() { _, _ = some.cur.Load().clientAddr(r) }); a != 0 {
		t.Errorf("clientAddr allocates %v times", a)
	}
}

// TestIPTableBounded: the table holds at most MaxTracked addresses; an
// address with no session and a full bucket leaves it; full of live
// addresses, a new one gets 503 (counted) and the known ones go on.
func TestIPTableBounded(t *testing.T) {
	l := newIPLimiter(IPLimits{MaxConnections: 10, HandshakeRate: 10, HandshakeBurst: 10, MaxTracked: 4})
	now := fakeClock(l)
	req := func(ip string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = ip + ":1000"
		return r
	}
	// 10,000 clients come and go, a millisecond apart: the table never
	// holds more than 4 (their buckets refill in 100 ms).
	for i := range 10000 {
		ip := fmt.Sprintf("198.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		k, status, _ := l.Enter(req(ip))
		if status != 0 {
			// Full of addresses whose buckets have not refilled yet: refused, counted.
			now.Add(int64(100 * time.Millisecond))
			continue
		}
		l.Leave(k)
		if n := l.tracked(); n > 4 {
			t.Fatalf("table holds %d addresses", n)
		}
		now.Add(int64(time.Millisecond))
	}
	now.Add(int64(time.Second))
	keys := make([]netip.Addr, 0, 4)
	for i := range 4 {
		k, status, _ := l.Enter(req(fmt.Sprintf("203.0.113.%d", i)))
		if status != 0 {
			t.Fatalf("address %d: %d", i, status)
		}
		keys = append(keys, k)
	}
	full := l.tableFull.Load()
	if _, status, retry := l.Enter(req("203.0.113.99")); status != http.StatusServiceUnavailable || retry <= 0 {
		t.Fatalf("new address with the table full of live ones: %d (Retry-After %d), want 503", status, retry)
	}
	if l.tableFull.Load() != full+1 {
		t.Fatal("table full not counted")
	}
	if _, status, _ := l.Enter(req("203.0.113.0")); status != 0 {
		t.Fatalf("known address with the table full: %d", status)
	}
	for _, k := range keys {
		l.Leave(k)
	}
	now.Add(int64(time.Second)) // buckets full again
	if _, status, _ := l.Enter(req("203.0.113.99")); status != 0 {
		t.Fatalf("new address after the others left: %d", status)
	}
	if n := l.tracked(); n > 2 {
		t.Fatalf("after the sweep the table holds %d (the one still in session and the new one)", n)
	}
}

// TestPerIPDefaults: config.hcl's defaults reach the instance, and
// loopback is exempt by them (the repository's tests and benchmarks).
func TestPerIPDefaults(t *testing.T) {
	srv, ts := newTestInstance(t, hostileConfig)
	l := srv.ipLimit.cur.Load()
	if l.lim.MaxConnections != 256 || l.lim.HandshakeRate != 20 || l.lim.HandshakeBurst != 200 ||
		l.lim.MaxTracked != 100000 || l.lim.ProxyHeader != "" || len(l.lim.Exempt) != 2 {
		t.Fatalf("per-IP limits from the defaults: %+v", l)
	}
	for i := range 300 { // over both the burst and the connections
		if status, _ := pollFrom(t, "127.0.0.1", strings.TrimPrefix(ts.URL, "http://"), nil); status != http.StatusOK {
			t.Fatalf("loopback handshake %d: %d", i, status)
		}
	}
	if n := srv.ipLimit.tracked(); n != 0 {
		t.Fatalf("loopback tracked: %d", n)
	}
}

// TestPerIPSlotsGivenBack: with one session per address, a WebSocket
// handshake that fails after the limiter let it in, and a polling session
// that the client closes, each give their slot back.
func TestPerIPSlotsGivenBack(t *testing.T) {
	srv, _ := newLimitedInstance(t, hostileConfig, Limits{PerIP: IPLimits{MaxConnections: 1}})
	addr := serveLimited(t, srv)

	// A WebSocket handshake gorilla refuses (no Sec-WebSocket-Key).
	c, err := fromAddr("127.0.0.2")(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	head, _ := io.ReadAll(c)
	c.Close()
	if !strings.HasPrefix(string(head), "HTTP/1.1 400") {
		t.Fatalf("bad WebSocket handshake answered %q", head)
	}
	w, status := wsFrom(t, "127.0.0.2", addr, nil)
	if status != http.StatusOK {
		t.Fatalf("after a failed WebSocket handshake: %d (its slot leaked)", status)
	}
	w.c.Close()

	// A polling session, closed by its client.
	hc := &http.Client{Transport: &http.Transport{DialContext: fromAddr("127.0.0.3")}, Timeout: 3 * time.Second}
	res, err := hc.Get("http://" + addr + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	i := strings.Index(string(b), `"sid":"`)
	if i < 0 {
		t.Fatalf("open %q", b)
	}
	sid := string(b[i+7 : i+27])
	if status, _ := pollFrom(t, "127.0.0.3", addr, nil); status != http.StatusTooManyRequests {
		t.Fatalf("second polling session of 127.0.0.3: %d, want 429", status)
	}
	res, err = hc.Post("http://"+addr+"/socket.io/?EIO=4&transport=polling&sid="+sid, "text/plain", strings.NewReader("1"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		status, _ := pollFrom(t, "127.0.0.3", addr, nil)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after its polling session closed, 127.0.0.3 still gets %d", status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
