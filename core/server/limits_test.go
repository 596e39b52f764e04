package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/core/routing"
)

// Hostile clients (issue 13): each test runs an attack over loopback while
// two normal clients chat in a room, and checks that the attacker is cut
// or bounded, that the normal clients lose nothing (sequence numbers), and
// that goroutines (and, where the attack is memory, the heap) come back.

const hostileConfig = `
server {
  ping_interval   = "5s"
  ping_timeout    = "5s"
  connect_timeout = "2s"
  max_payload     = 1000000
}
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
  event "chat:message" {
    broadcast { to = args[0].room }
  }
  event "private" {
    broadcast {
      to             = args[0]
      require_member = false
    }
  }
}
`

// newLimitedInstance serves src with lim as its limits.
func newLimitedInstance(t *testing.T, src string, lim Limits) (*Server, *httptest.Server) {
	t.Helper()
	return serveTest(t, newServerLimits(parseTestConfig(t, src), testLog(), "test", routing.Plugins{}, lim))
}

// serveLimited runs s.Serve on a loopback listener (the instance's own
// http.Server and upgrade listener, which httptest does not use).
func serveLimited(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l.Addr().String()
}

// connectWS opens a Socket.IO socket on "/" and returns it with its id.
func connectWS(t *testing.T, url string) (*wsClient, string) {
	t.Helper()
	w := openWS(t, websocket.DefaultDialer, "ws"+strings.TrimPrefix(url, "http"))
	w.send("40")
	reply := w.read()
	if !strings.HasPrefix(reply, `40{"sid":"`) {
		t.Fatalf("CONNECT reply %q", reply)
	}
	return w, reply[len(`40{"sid":"`) : len(reply)-2]
}

// chatters are two normal clients in room "lobby".
type chatters struct {
	t    *testing.T
	a, b *wsClient
	seq  int
}

func newChatters(t *testing.T, url string) *chatters {
	a, _ := connectWS(t, url)
	b, _ := connectWS(t, url)
	for _, c := range []*wsClient{a, b} {
		c.send(`421["join","lobby"]`)
		if got := c.read(); got != `431[{"ok":true}]` {
			t.Fatalf("join ack %q", got)
		}
	}
	return &chatters{t: t, a: a, b: b}
}

// chat has a send n numbered messages to the room and b receive every one
// of them, in order, and nothing that is not valid UTF-8.
func (c *chatters) chat(n int) {
	c.t.Helper()
	for range n {
		c.seq++
		c.a.send(fmt.Sprintf(`42["chat:message",{"room":"lobby","seq":%d}]`, c.seq))
	}
	for _, r := range []*wsClient{c.b, c.a} { // the sender is in the room too
		for i := c.seq - n + 1; i <= c.seq; i++ {
			got := r.read()
			if !utf8.ValidString(got) {
				c.t.Fatalf("a normal client received invalid UTF-8: %q", got)
			}
			if want := fmt.Sprintf(`42["chat:message",{"room":"lobby","seq":%d}]`, i); got != want {
				c.t.Fatalf("normal client got %q, want %q", got, want)
			}
		}
	}
}

// waitGoroutines waits until the goroutines are back to at most base+slack.
func waitGoroutines(t *testing.T, base, slack int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base+slack {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCount waits a little for a counter the server updates after the
// client sees the close (onClose runs after the socket is closed).
func waitCount(get func() int64, want int64) int64 {
	deadline := time.Now().Add(2 * time.Second)
	for get() != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return get()
}

// closeCode waits for the server to close c and returns the close code
// (-1: the connection ended without a close frame).
func closeCode(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		_ = c.SetReadDeadline(deadline)
		_, b, err := c.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				return ce.Code
			}
			return -1
		}
		if string(b) == "2" {
			_ = c.WriteMessage(websocket.TextMessage, []byte("3"))
		}
	}
	t.Fatal("the server did not close the connection")
	return 0
}

// TestInvalidUTF8ClosesOnlySender: a room member sends a text frame that
// is not UTF-8. It used to be relayed, and every client in the room then
// failed its own connection. Now the sender alone is closed with 1007
// (RFC 6455), again and again, and the room chats on.
func TestInvalidUTF8ClosesOnlySender(t *testing.T) {
	srv, ts := newLimitedInstance(t, hostileConfig, Limits{})
	base := runtime.NumGoroutine()
	room := newChatters(t, ts.URL)
	room.chat(5)
	for range 3 {
		m, _ := connectWS(t, ts.URL)
		m.send(`421["join","lobby"]`)
		m.read()
		if err := m.c.WriteMessage(websocket.TextMessage, []byte("42[\"chat:message\",{\"room\":\"lobby\",\"text\":\"\xff\xfe\xc3\"}]")); err != nil {
			t.Fatal(err)
		}
		if code := closeCode(t, m.c); code != websocket.CloseInvalidFramePayloadData {
			t.Fatalf("attacker's close code %d, want 1007", code)
		}
		m.c.Close()
		room.chat(10)
	}
	if n := srv.Engine.InvalidUTF8.Load(); n != 3 {
		t.Fatalf("invalid_utf8 counted %d, want 3", n)
	}
	if got := waitCount(func() int64 { return srv.SocketIO.Stats.Closed()["invalid utf-8"] }, 3); got != 3 {
		t.Fatalf("closed by invalid utf-8: %d, want 3", got)
	}
	waitGoroutines(t, base, 8) // the chatters' sessions (none idle-parked under httptest)

	// Polling: the same payload in a POST body is a parse error: 400, and
	// the session is gone.
	sid := pollOpen(t, ts.URL)
	res, err := http.Post(ts.URL+"/socket.io/?EIO=4&transport=polling&sid="+sid, "text/plain;charset=UTF-8",
		strings.NewReader("40\x1e42[\"chat:message\",\"\xff\"]"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("polling POST with invalid UTF-8: %d, want 400", res.StatusCode)
	}
	if srv.Engine.Count() != 2 { // the chatters
		t.Fatalf("sessions %d after the invalid POST, want 2", srv.Engine.Count())
	}
	room.chat(10)
}

// pollOpen opens a polling session and returns its sid.
func pollOpen(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	i := strings.Index(string(b), `"sid":"`)
	if i < 0 {
		t.Fatalf("open %q", b)
	}
	return string(b[i+7 : i+27])
}

// TestPollingBodyDeclaredLengthAndTimeout: POSTs that declare 1 MB and
// send 140 bytes used to pin the megabyte and a goroutine each for as long
// as the client liked. Now the buffer grows with what arrives, the body
// has BodyTimeout to arrive (408, session closed) and everything is given
// back.
func TestPollingBodyDeclaredLengthAndTimeout(t *testing.T) {
	srv, ts := newLimitedInstance(t, hostileConfig, Limits{BodyTimeout: 500 * time.Millisecond})
	room := newChatters(t, ts.URL)
	room.chat(5)
	runtime.GC()
	base := runtime.NumGoroutine()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	const n = 40
	addr := strings.TrimPrefix(ts.URL, "http://")
	conns := make([]net.Conn, n)
	for i := range conns {
		sid := pollOpen(t, ts.URL)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		body := "40" + strings.Repeat("x", 100)
		fmt.Fprintf(c, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n%s", sid, body)
		conns[i] = c
	}
	time.Sleep(150 * time.Millisecond) // the bodies are being read
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	if grew := int64(during.HeapAlloc) - int64(before.HeapAlloc); grew > 4<<20 {
		t.Fatalf("%d stalled POSTs hold %d bytes of heap (their declared length, %d MB)", n, grew, n)
	}
	room.chat(10)

	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("stalled POST: %v (no answer within the body timeout)", err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("stalled POST answered %d, want 408", res.StatusCode)
		}
	}
	if got := srv.Engine.BodyTimeouts.Load(); got != n {
		t.Fatalf("body timeouts %d, want %d", got, n)
	}
	if srv.Engine.Count() != 2 {
		t.Fatalf("sessions %d, want the 2 chatters", srv.Engine.Count())
	}
	for _, c := range conns {
		c.Close()
	}
	http.DefaultClient.CloseIdleConnections()
	waitGoroutines(t, base, 4)
	room.chat(10)
}

// TestRequestHeadLimits: a request head over 16 KiB gets 431 (it used to
// be read up to net/http's 1 MB); a handshake under it with big headers
// leaves its session no more than MaxHandshakeBytes of them, small ones
// (the cookie) first.
func TestRequestHeadLimits(t *testing.T) {
	srv, _ := newLimitedInstance(t, hostileConfig, Limits{})
	addr := serveLimited(t, srv)
	url := "http://" + addr
	room := newChatters(t, url)

	for _, ws := range []bool{false, true} {
		req, _ := http.NewRequest("GET", url+"/socket.io/?EIO=4&transport=polling", nil)
		if ws {
			req.Header.Set("Upgrade", "websocket")
		}
		req.Header.Set("X-Pad", strings.Repeat("p", 20<<10))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("20 KiB head (websocket %v): %d, want 431", ws, res.StatusCode)
		}
	}

	hdr := http.Header{}
	hdr.Set("Cookie", "session=abc")
	hdr.Set("X-Pad-1", strings.Repeat("a", 5000))
	hdr.Set("X-Pad-2", strings.Repeat("b", 5000))
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, open, _ := c.ReadMessage()
	sid := string(open[len(`0{"sid":"`) : len(`0{"sid":"`)+20])
	var kept int
	var cookie string
	for _, sess := range srv.Engine.Sessions() {
		if sess.ID() != sid {
			continue
		}
		hs := sess.Handshake()
		kept = len(hs.URL)
		for k, v := range hs.Header() {
			kept += len(k) + len(strings.Join(v, ""))
		}
		cookie = hs.Header().Get("Cookie")
	}
	if kept == 0 || kept > 8<<10 {
		t.Fatalf("the session keeps %d bytes of its handshake, want at most 8 KiB", kept)
	}
	if cookie != "session=abc" {
		t.Fatalf("cookie %q was not kept", cookie)
	}
	if srv.Engine.HeadersDropped.Load() != 1 {
		t.Fatalf("headers dropped %d, want 1", srv.Engine.HeadersDropped.Load())
	}
	room.chat(10)
}

// TestIdleKeepAliveConnectionsClosed: connections that send one request
// and then idle used to stay open for good. Now IdleTimeout closes them,
// while a long-poll GET waiting longer than IdleTimeout is not cut.
func TestIdleKeepAliveConnectionsClosed(t *testing.T) {
	srv, _ := newLimitedInstance(t, strings.Replace(hostileConfig, `"5s"`, `"800ms"`, 1), Limits{IdleTimeout: 300 * time.Millisecond})
	addr := serveLimited(t, srv)
	url := "http://" + addr
	room := newChatters(t, url)
	base := runtime.NumGoroutine()

	const n = 200
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		conns[i] = c
	}
	// A long poll that waits for the ping (800 ms) past IdleTimeout.
	sid := pollOpen(t, url)
	start := time.Now()
	res, err := http.Get(url + "/socket.io/?EIO=4&transport=polling&sid=" + sid)
	if err != nil {
		t.Fatalf("long poll: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "2" || time.Since(start) < 500*time.Millisecond {
		t.Fatalf("long poll got %q after %v, want the ping after ~800ms", b, time.Since(start))
	}
	room.chat(10)

	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("idle connection %d: %v, want closed by the server", i, err)
		}
		c.Close()
	}
	http.DefaultClient.CloseIdleConnections()
	waitGoroutines(t, base, 4)
	room.chat(10)
}

// TestPacketRateLimit: a client that floods packets is disconnected at
// the default limit (100/s, burst 200); the chatters, well under it, lose
// nothing.
func TestPacketRateLimit(t *testing.T) {
	srv, ts := newLimitedInstance(t, hostileConfig, Limits{})
	base := runtime.NumGoroutine()
	room := newChatters(t, ts.URL)
	room.chat(50) // a burst of 50 from one client is fine
	m, _ := connectWS(t, ts.URL)
	for i := range 1000 {
		if m.c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`42["chat:message",{"room":"elsewhere","n":%d}]`, i))) != nil {
			break // cut already
		}
	}
	closeCode(t, m.c)
	m.c.Close()
	if got := waitCount(func() int64 { return srv.SocketIO.Stats.Closed()["rate limit exceeded"] }, 1); got != 1 {
		t.Fatalf("closed for the rate: %d, want 1", got)
	}
	if got := srv.Engine.RateLimited.Load(); got != 1 {
		t.Fatalf("rate limited %d, want 1", got)
	}
	room.chat(50)
	waitGoroutines(t, base, 8)
}

// TestRoomLimits: joins past MaxRooms are refused (the index used to grow
// without bound), and so is joining another socket's id, which would
// receive what is sent to that socket alone.
func TestRoomLimits(t *testing.T) {
	srv, ts := newLimitedInstance(t, hostileConfig, Limits{MaxRooms: 20})
	room := newChatters(t, ts.URL)
	victim, victimID := connectWS(t, ts.URL)
	m, _ := connectWS(t, ts.URL)
	for i := range 25 {
		m.send(fmt.Sprintf(`42%d["join","r%d"]`, i, i))
		want := fmt.Sprintf(`43%d[{"ok":true}]`, i)
		if i >= 20 {
			want = fmt.Sprintf(`43%d[{"ok":false,"error":"too many rooms"}]`, i)
		}
		if got := m.read(); got != want {
			t.Fatalf("join %d: %q, want %q", i, got, want)
		}
	}
	m.send(fmt.Sprintf(`42101["join",%q]`, victimID))
	if got, want := m.read(), `43101[{"ok":false,"error":"room is another socket's id"}]`; got != want {
		t.Fatalf("joining the victim's id: %q, want %q", got, want)
	}
	room.a.send(fmt.Sprintf(`42["private",%q,"for your eyes"]`, victimID))
	if got := victim.read(); !strings.Contains(got, "for your eyes") {
		t.Fatalf("victim got %q", got)
	}
	m.send(`42["chat:message",{"room":"r1"}]`)
	if got := m.read(); got != `42["chat:message",{"room":"r1"}]` {
		t.Fatalf("the attacker got %q (want its own message, not the victim's)", got)
	}
	if got := srv.SocketIO.Stats.JoinsRefused.Load(); got != 6 {
		t.Fatalf("joins refused %d, want 6", got)
	}
	room.chat(10)
}

// TestWithheldAttachmentsTimeout: a binary packet whose attachments never
// come used to hold its partial packet for the connection's life (the
// client answers pings). Now the client is closed after AttachmentTimeout.
func TestWithheldAttachmentsTimeout(t *testing.T) {
	srv, ts := newLimitedInstance(t, hostileConfig, Limits{AttachmentTimeout: 400 * time.Millisecond})
	base := runtime.NumGoroutine()
	room := newChatters(t, ts.URL)
	m, _ := connectWS(t, ts.URL)
	m.send(`421["join","lobby"]`)
	m.read()
	// One complete binary event first: a finished packet stops the clock.
	m.send(`451-["chat:message",{"room":"lobby"},{"_placeholder":true,"num":0}]`)
	if err := m.c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	for _, r := range []*wsClient{room.a, room.b, m} {
		if got := r.read(); !strings.HasPrefix(got, `451-["chat:message"`) {
			t.Fatalf("binary event %q", got)
		}
		if got := r.read(); got != "\x01\x02\x03" {
			t.Fatalf("attachment %q", got)
		}
	}
	start := time.Now()
	m.send(`452-["chat:message",{"room":"lobby"},{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)
	if err := m.c.WriteMessage(websocket.BinaryMessage, []byte{1}); err != nil {
		t.Fatal(err)
	}
	closeCode(t, m.c) // answers pings meanwhile
	if d := time.Since(start); d < 350*time.Millisecond || d > 2*time.Second {
		t.Fatalf("closed after %v, want ~400ms", d)
	}
	if got := srv.SocketIO.Stats.AttachmentTimeouts.Load(); got != 1 {
		t.Fatalf("attachment timeouts %d, want 1", got)
	}
	room.chat(10)
	waitGoroutines(t, base, 8)
}

// TestLimitsFromConfig: the limits block reaches the engine, the socket
// layer and the HTTP server; packet_rate = 0 turns the rate limit off.
func TestLimitsFromConfig(t *testing.T) {
	srv, ts := newTestInstance(t, strings.Replace(hostileConfig, "server {", `server {
  limits {
    packet_rate         = 0
    max_rooms           = 2
    body_timeout        = "3s"
    max_handshake_bytes = "2KiB"
    max_head_bytes      = "8KiB"
    idle_timeout        = "7s"
  }`, 1))
	o := srv.Engine.Options()
	if o.PacketRate != -1 || o.BodyTimeout != 3*time.Second || o.MaxHandshakeBytes != 2048 {
		t.Fatalf("engine options: rate %v, body timeout %v, handshake bytes %d", o.PacketRate, o.BodyTimeout, o.MaxHandshakeBytes)
	}
	if hs := srv.limits.httpServer(nil, time.Second); hs.IdleTimeout != 7*time.Second || hs.MaxHeaderBytes != 8192-4096 {
		t.Fatalf("http server: idle %v, max header bytes %d", hs.IdleTimeout, hs.MaxHeaderBytes)
	}
	m, _ := connectWS(t, ts.URL)
	for i := range 3 {
		m.send(fmt.Sprintf(`42%d["join","r%d"]`, i, i))
		want := fmt.Sprintf(`43%d[{"ok":true}]`, i)
		if i == 2 {
			want = `432[{"ok":false,"error":"too many rooms"}]`
		}
		if got := m.read(); got != want {
			t.Fatalf("join %d: %q, want %q", i, got, want)
		}
	}
	for range 500 { // no rate limit: nothing closes
		m.send(`42["chat:message",{"room":"r0"}]`)
	}
	for range 500 {
		if got := m.read(); got != `42["chat:message",{"room":"r0"}]` {
			t.Fatalf("got %q", got)
		}
	}
}
