package engineio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// The server side of the WebSocket over real loopback connections, spoken
// to in raw bytes: the handshake, and what the peer receives when its
// frames break the rules.

// newRawServer is newTestServer that also returns the Server.
func newRawServer(t *testing.T, opts Options) (*httptest.Server, *Server, *echo) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	opts.Log = logrus.NewEntry(log)
	h := &echo{done: make(chan string, 16)}
	srv := NewServer(opts, h)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts, srv, h
}

const rfcKey, rfcAccept = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" // RFC 6455 §1.3

// rawRequest sends a WebSocket handshake with hdr (nil values drop the
// default header) and returns the response and the connection's reader.
func rawRequest(t *testing.T, ts *httptest.Server, path string, hdr map[string]string, extra []byte) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": rfcKey}
	for k, v := range hdr {
		h[k] = v
	}
	var req bytes.Buffer
	req.WriteString("GET " + path + " HTTP/1.1\r\nHost: " + c.RemoteAddr().String() + "\r\n")
	for k, v := range h {
		if v != "" {
			req.WriteString(k + ": " + v + "\r\n")
		}
	}
	req.WriteString("\r\n")
	req.Write(extra)
	if _, err := c.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return c, br, nil
	}
	return c, br, res
}

// dialRaw opens a WebSocket session and reads its open packet.
func dialRaw(t *testing.T, ts *httptest.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, br, res := rawRequest(t, ts, "/?EIO=4&transport=websocket", nil, nil)
	if res == nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %+v", res)
	}
	if got := res.Header.Get("Sec-WebSocket-Accept"); got != rfcAccept {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, rfcAccept)
	}
	if op, p := readServerFrame(t, br); op != opText || !bytes.HasPrefix(p, []byte(`0{"sid":`)) {
		t.Fatalf("open packet: %d %q", op, p)
	}
	return c, br
}

// readServerFrame reads one (unmasked, final) server frame.
func readServerFrame(t *testing.T, br *bufio.Reader) (byte, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	if h[0]&0xF0 != 0x80 || h[1]&0x80 != 0 {
		t.Fatalf("server frame header %x", h)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, _ = io.ReadFull(br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatalf("reading a payload: %v", err)
	}
	return h[0] & 0x0F, p
}

// expectClose reads until a close frame, which must carry code, and then
// the end of the connection.
func expectClose(t *testing.T, c net.Conn, br *bufio.Reader, code int) {
	t.Helper()
	for {
		op, p := readServerFrame(t, br)
		if op != opClose {
			continue // a ping or an echo before it
		}
		if len(p) < 2 || int(binary.BigEndian.Uint16(p)) != code {
			t.Fatalf("close payload %x, want code %d", p, code)
		}
		break
	}
	if n, err := br.Read(make([]byte, 1)); err == nil {
		t.Fatalf("%d bytes after the close frame", n)
	}
}

func TestWebSocketProtocolErrorsClose1002(t *testing.T) {
	long := bytes.Repeat([]byte("p"), 126)
	cases := map[string][]byte{
		"unmasked":                 clientFrame(true, opText, []byte("4x"), false),
		"rsv1":                     rawFrame(true, 0x40, opText, 2, []byte("4x"), true),
		"opcode 3":                 clientFrame(true, 3, nil, true),
		"fragmented ping":          clientFrame(false, opPing, nil, true),
		"ping of 126":              clientFrame(true, opPing, long, true),
		"continuation first":       clientFrame(true, opContinuation, []byte("x"), true),
		"text inside a fragmented": cat(clientFrame(false, opText, []byte("4a"), true), clientFrame(true, opText, []byte("4b"), true)),
		"64-bit length, top bit":   rawFrame(true, 0, opBinary, 1<<63, nil, true),
		"close of 1 byte":          clientFrame(true, opClose, []byte{3}, true),
		"close 1006":               clientFrame(true, opClose, closePayload(1006, ""), true),
	}
	ts, _, h := newRawServer(t, Options{})
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			c, br := dialRaw(t, ts)
			if _, err := c.Write(frame); err != nil {
				t.Fatal(err)
			}
			expectClose(t, c, br, closeProtocolError)
			if reason := waitClose(t, h); reason != ReasonTransportError {
				t.Fatalf("reason %q", reason)
			}
		})
	}
}

func TestWebSocketClaimOverLimitCloses1009(t *testing.T) {
	ts, _, h := newRawServer(t, Options{MaxPayload: 1000})
	c, br := dialRaw(t, ts)
	// 1 GiB announced, none sent: the refusal comes from the header.
	if _, err := c.Write(rawFrame(true, 0, opBinary, 1<<30, nil, true)); err != nil {
		t.Fatal(err)
	}
	expectClose(t, c, br, closeTooBig)
	if reason := waitClose(t, h); reason != ReasonTransportError {
		t.Fatalf("reason %q", reason)
	}
}

func TestWebSocketCloseIsEchoed(t *testing.T) {
	ts, _, h := newRawServer(t, Options{})
	for _, code := range []int{1001, 4000} {
		c, br := dialRaw(t, ts)
		if _, err := c.Write(clientFrame(true, opClose, closePayload(code, "bye"), true)); err != nil {
			t.Fatal(err)
		}
		expectClose(t, c, br, code)
		if reason := waitClose(t, h); reason != ReasonTransportClose {
			t.Fatalf("reason %q", reason)
		}
	}
	c, br := dialRaw(t, ts) // no code: 1000
	_, _ = c.Write(clientFrame(true, opClose, nil, true))
	expectClose(t, c, br, closeNormal)
	waitClose(t, h)
}

// Fragments with a ping between them: the pong comes first, then the echo
// of the whole message; then every length boundary, both ways.
func TestWebSocketFragmentsPingsAndLengths(t *testing.T) {
	ts, _, _ := newRawServer(t, Options{})
	c, br := dialRaw(t, ts)
	_, _ = c.Write(cat(clientFrame(false, opText, []byte("4hel"), true), clientFrame(true, opPing, []byte("p1"), true),
		clientFrame(false, opContinuation, []byte("l"), true), clientFrame(true, opContinuation, []byte("o"), true)))
	if op, p := readServerFrame(t, br); op != opPong || string(p) != "p1" {
		t.Fatalf("want pong p1, got %d %q", op, p)
	}
	if op, p := readServerFrame(t, br); op != opText || string(p) != "4hello" {
		t.Fatalf("want echo 4hello, got %d %q", op, p)
	}
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 200000} {
		msg := bytes.Repeat([]byte{0xA5}, n)
		for i := range msg {
			msg[i] ^= byte(i)
		}
		_, _ = c.Write(clientFrame(true, opBinary, msg, true))
		if op, p := readServerFrame(t, br); op != opBinary || !bytes.Equal(p, msg) {
			t.Fatalf("%d bytes: echo op %d of %d bytes differs", n, op, len(p))
		}
	}
}

func TestWebSocketHandshakeRefusals(t *testing.T) {
	ts, srv, _ := newRawServer(t, Options{})
	cases := []struct {
		name    string
		hdr     map[string]string
		status  int
		version bool // Sec-WebSocket-Version: 13 in the answer
	}{
		{"version 8", map[string]string{"Sec-WebSocket-Version": "8"}, 400, true},
		{"no version", map[string]string{"Sec-WebSocket-Version": ""}, 400, true},
		{"no key", map[string]string{"Sec-WebSocket-Key": ""}, 400, false},
		{"key of 15 bytes", map[string]string{"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA"}, 400, false},
		{"key not base64", map[string]string{"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!=="}, 400, false},
		{"no upgrade token", map[string]string{"Connection": "keep-alive"}, 400, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, res := rawRequest(t, ts, "/?EIO=4&transport=websocket", c.hdr, nil)
			if res == nil || res.StatusCode != c.status {
				t.Fatalf("response %+v, want %d", res, c.status)
			}
			body, _ := io.ReadAll(io.LimitReader(res.Body, 200))
			if !strings.HasPrefix(string(body), "websocket: ") {
				t.Fatalf("body %q", body)
			}
			if got := res.Header.Get("Sec-WebSocket-Version"); (got == "13") != c.version {
				t.Fatalf("Sec-WebSocket-Version %q", got)
			}
		})
	}
	// Upgrade and Connection tokens are found in lists, in any case.
	_, _, res := rawRequest(t, ts, "/?EIO=4&transport=websocket",
		map[string]string{"Connection": "keep-alive, UPGRADE", "Upgrade": "WebSocket"}, nil)
	if res == nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("token lists: %+v", res)
	}
	for deadline := time.Now().Add(2 * time.Second); srv.Opened.Load() != 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // counted just after the 101
	}
	if n := srv.Opened.Load(); n != 1 {
		t.Fatalf("%d sessions opened, want the one good handshake", n)
	}
}

// A client that sends a frame with its handshake, before the 101, gets no
// 101 and no session.
func TestWebSocketDataBeforeHandshake(t *testing.T) {
	ts, srv, _ := newRawServer(t, Options{})
	_, _, res := rawRequest(t, ts, "/?EIO=4&transport=websocket", nil, clientFrame(true, opText, []byte("4early"), true))
	if res != nil {
		t.Fatalf("got a response: %d", res.StatusCode)
	}
	if n := srv.Opened.Load(); n != 0 {
		t.Fatalf("%d sessions opened", n)
	}
}

// The sticky-session cookies go out on the 101.
func TestWebSocketCookiesOn101(t *testing.T) {
	ts, _, _ := newRawServer(t, Options{
		SessionCookie:  &Cookie{Name: "io", Path: "/", HTTPOnly: true},
		InstanceCookie: &Cookie{Name: "sf_instance", Path: "/"},
		InstanceID:     "instance-abc",
	})
	_, br, res := rawRequest(t, ts, "/?EIO=4&transport=websocket", nil, nil)
	if res == nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %+v", res)
	}
	_, open := readServerFrame(t, br)
	sid := string(open[len(`0{"sid":"`):][:20])
	cookies := res.Header.Values("Set-Cookie")
	want := []string{"io=" + sid + "; Path=/; HttpOnly", "sf_instance=instance-abc; Path=/"}
	if len(cookies) != 2 || cookies[0] != want[0] || cookies[1] != want[1] {
		t.Fatalf("cookies %q, want %q", cookies, want)
	}
}

// The upgrade's probe socket is read by the same reader before it belongs
// to the session: a ping gets its pong there, a frame that breaks the
// rules gets 1002, and the polling session lives on; a second probe then
// upgrades.
func TestUpgradeProbeFramesAndFailure(t *testing.T) {
	ts, srv, h := newRawServer(t, Options{})
	sid, _ := handshake(t, ts.URL)
	path := "/?EIO=4&transport=websocket&sid=" + sid

	c, br, res := rawRequest(t, ts, path, nil, nil)
	if res == nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("probe handshake: %+v", res)
	}
	_, _ = c.Write(clientFrame(true, opPing, []byte("hi"), true))
	if op, p := readServerFrame(t, br); op != opPong || string(p) != "hi" {
		t.Fatalf("want pong hi, got %d %q", op, p)
	}
	_, _ = c.Write(clientFrame(true, opText, []byte("2probe"), false)) // unmasked
	expectClose(t, c, br, closeProtocolError)
	h.mu.Lock()
	closed := len(h.closed)
	h.mu.Unlock()
	if srv.Count() != 1 || closed != 0 {
		t.Fatalf("the polling session must live on: %d sessions, %d closed", srv.Count(), closed)
	}

	c, br, res = rawRequest(t, ts, path, nil, nil)
	if res == nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("second probe handshake: %+v", res)
	}
	_, _ = c.Write(clientFrame(true, opText, []byte("2probe"), true))
	if op, p := readServerFrame(t, br); op != opText || string(p) != "3probe" {
		t.Fatalf("probe answer %d %q", op, p)
	}
	_, _ = c.Write(cat(clientFrame(true, opText, []byte("5"), true), clientFrame(true, opText, []byte("4after"), true)))
	for {
		op, p := readServerFrame(t, br)
		if op == opText && string(p) == "6" {
			continue // the noop for a GET, if one was waiting
		}
		if op != opText || string(p) != "4after" {
			t.Fatalf("echo after the upgrade: %d %q", op, p)
		}
		break
	}
}

// A session closed by the server flushes, then sends one close frame, 1000,
// and nothing after it; so does one whose peer closes at the same moment.
func TestWebSocketServerCloseSendsOneCloseFrame(t *testing.T) {
	ts, srv, h := newRawServer(t, Options{})
	for range 20 {
		c, br := dialRaw(t, ts)
		_, _ = c.Write(clientFrame(true, opText, []byte("4x"), true))
		if op, p := readServerFrame(t, br); op != opText || string(p) != "4x" {
			t.Fatalf("echo %d %q", op, p)
		}
		sessions := srv.Sessions()
		if len(sessions) != 1 {
			t.Fatalf("%d sessions", len(sessions))
		}
		sessions[0].Close(ReasonForcedClose)
		expectClose(t, c, br, closeNormal)
		if reason := waitClose(t, h); reason != ReasonForcedClose {
			t.Fatalf("reason %q", reason)
		}
	}
}
