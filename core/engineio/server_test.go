package engineio

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"
	"github.com/socketfleet/socketfleet/core/protocol/eiowire"
	"github.com/socketfleet/socketfleet/internal/testkit"
)

// echo is a Handler that sends every message back and records closes.
type echo struct {
	mu     sync.Mutex
	closed []string
	done   chan string
}

func (e *echo) Open(s *Session) {
	s.SetHandler(func(p eiowire.Packet) {
		if p.Binary {
			s.Send(NewBinary(append([]byte(nil), p.Data...)))
			return
		}
		s.Send(NewText(eiowire.Message, append([]byte(nil), p.Data...)))
	}, func(reason string) {
		e.mu.Lock()
		e.closed = append(e.closed, reason)
		e.mu.Unlock()
		select {
		case e.done <- reason:
		default:
		}
	})
}

func newTestServer(t *testing.T, opts Options) (*httptest.Server, *echo) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	opts.Log = logrus.NewEntry(log)
	h := &echo{done: make(chan string, 16)}
	ts := httptest.NewServer(NewServer(opts, h))
	t.Cleanup(ts.Close)
	return ts, h
}

type resp struct {
	status int
	body   string
	header http.Header
}

func do(t *testing.T, method, url, body string, hdr map[string]string) resp {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, string(b), res.Header}
}

func handshake(t *testing.T, base string) (sid string, open map[string]any) {
	t.Helper()
	r := do(t, "GET", base+"/?EIO=4&transport=polling", "", nil)
	if r.status != 200 || !strings.HasPrefix(r.body, "0{") {
		t.Fatalf("handshake: %d %q", r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body[1:]), &open); err != nil {
		t.Fatal(err)
	}
	return open["sid"].(string), open
}

func TestHandshakeOpenPacket(t *testing.T) {
	ts, _ := newTestServer(t, Options{PingInterval: 300 * time.Millisecond, PingTimeout: 200 * time.Millisecond, MaxPayload: 1000})
	r := do(t, "GET", ts.URL+"/?EIO=4&transport=polling", "", nil)
	if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Errorf("content-type %q", ct)
	}
	want := `","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000}`
	if !strings.HasPrefix(r.body, `0{"sid":"`) || !strings.HasSuffix(r.body, want) {
		t.Fatalf("open packet %q", r.body)
	}
	var open map[string]any
	_ = json.Unmarshal([]byte(r.body[1:]), &open)
	if len(open) != 5 || len(open["sid"].(string)) != 20 {
		t.Fatalf("open packet fields %v", open)
	}
}

func TestProtocolErrors(t *testing.T) {
	ts, _ := newTestServer(t, Options{AllowedOrigins: []string{"https://good.example"}})
	cases := []struct {
		name, method, query string
		hdr                 map[string]string
		status              int
		body                string
	}{
		{"transport missing", "GET", "EIO=4", nil, 400, `{"code":0,"message":"Transport unknown"}`},
		{"transport unknown", "GET", "EIO=4&transport=carrier-pigeon", nil, 400, `{"code":0,"message":"Transport unknown"}`},
		{"sid unknown", "GET", "EIO=4&transport=polling&sid=nope", nil, 400, `{"code":1,"message":"Session ID unknown"}`},
		{"handshake by POST", "POST", "EIO=4&transport=polling", nil, 400, `{"code":2,"message":"Bad handshake method"}`},
		{"websocket without upgrade", "GET", "EIO=4&transport=websocket", nil, 400, `{"code":3,"message":"Bad request"}`},
		{"origin refused", "GET", "EIO=4&transport=polling", map[string]string{"Origin": "https://evil.example"}, 403, `{"code":4,"message":"Forbidden"}`},
		{"EIO missing", "GET", "transport=polling", nil, 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"EIO 3", "GET", "EIO=3&transport=polling", nil, 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"EIO abc", "GET", "EIO=abc&transport=polling", nil, 400, `{"code":5,"message":"Unsupported protocol version"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, c.method, ts.URL+"/?"+c.query, "", c.hdr)
			if r.status != c.status || r.body != c.body {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, c.status, c.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content-type %q", ct)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	ts, _ := newTestServer(t, Options{AllowedOrigins: []string{"https://good.example"}, Credentials: true})
	r := do(t, "GET", ts.URL+"/?EIO=4&transport=polling", "", map[string]string{"Origin": "https://good.example"})
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://good.example" ||
		r.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("CORS headers: %d %v", r.status, r.header)
	}
	r = do(t, "OPTIONS", ts.URL+"/?EIO=4&transport=polling", "", map[string]string{
		"Origin": "https://good.example", "Access-Control-Request-Headers": "content-type"})
	if r.status != 204 || r.header.Get("Access-Control-Allow-Headers") != "content-type" {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
	// WebSocket from a refused origin.
	hdr := http.Header{"Origin": {"https://evil.example"}}
	_, res, err := websocket.DefaultDialer.Dial(wsURL(ts)+"/?EIO=4&transport=websocket", hdr)
	if err == nil || res == nil || res.StatusCode != 403 {
		t.Fatalf("websocket from refused origin: err=%v res=%v", err, res)
	}
}

func TestPollingPostErrors(t *testing.T) {
	ts, h := newTestServer(t, Options{MaxPayload: 100})
	sid, _ := handshake(t, ts.URL)
	url := ts.URL + "/?EIO=4&transport=polling&sid=" + sid

	// Oversized POST: 413, and the session survives.
	if r := do(t, "POST", url, "4"+strings.Repeat("x", 200), nil); r.status != 413 {
		t.Fatalf("oversized POST: %d %q", r.status, r.body)
	}
	if r := do(t, "POST", url, "4hello", nil); r.status != 200 || r.body != "ok" {
		t.Fatalf("POST after 413: %d %q", r.status, r.body)
	}
	if r := do(t, "GET", url, "", nil); r.body != "4hello" {
		t.Fatalf("echo after 413: %q", r.body)
	}
	// Binary content type is refused in v4.
	if r := do(t, "POST", url, "4x", map[string]string{"Content-Type": "application/octet-stream"}); r.status != 400 {
		t.Fatalf("octet-stream POST: %d", r.status)
	}
	// A malformed payload closes the session.
	if r := do(t, "POST", url, "abc", nil); r.status != 400 {
		t.Fatalf("malformed POST: %d", r.status)
	}
	if reason := waitClose(t, h); reason != ReasonParseError {
		t.Fatalf("close reason %q", reason)
	}
	if r := do(t, "GET", url, "", nil); r.status != 400 || !strings.Contains(r.body, `"code":1`) {
		t.Fatalf("GET on dead session: %d %s", r.status, r.body)
	}
}

func waitClose(t *testing.T, h *echo) string {
	t.Helper()
	select {
	case r := <-h.done:
		return r
	case <-time.After(3 * time.Second):
		t.Fatal("session did not close")
		return ""
	}
}

func TestPollingBatchesAndClientPing(t *testing.T) {
	ts, h := newTestServer(t, Options{})
	sid, _ := handshake(t, ts.URL)
	url := ts.URL + "/?EIO=4&transport=polling&sid=" + sid
	if r := do(t, "POST", url, "4test1\x1e4test2\x1ebAQID", nil); r.body != "ok" {
		t.Fatalf("POST: %q", r.body)
	}
	if r := do(t, "GET", url, "", nil); r.body != "4test1\x1e4test2\x1ebAQID" {
		t.Fatalf("batched GET: %q", r.body)
	}
	// A client ping is the wrong heartbeat direction in v4: the session ends.
	do(t, "POST", url, "2", nil)
	if reason := waitClose(t, h); reason != ReasonParseError {
		t.Fatalf("close reason %q", reason)
	}
}

func TestOverlappingGETsCloseSession(t *testing.T) {
	ts, h := newTestServer(t, Options{})
	sid, _ := handshake(t, ts.URL)
	url := ts.URL + "/?EIO=4&transport=polling&sid=" + sid
	first := make(chan resp, 1)
	go func() { first <- do(t, "GET", url, "", nil) }()
	time.Sleep(100 * time.Millisecond)
	if r := do(t, "GET", url, "", nil); r.status != 400 {
		t.Fatalf("second GET: %d", r.status)
	}
	if r := <-first; r.status != 200 || r.body != "1" {
		t.Fatalf("first GET: %d %q", r.status, r.body)
	}
	waitClose(t, h)
	if r := do(t, "GET", url, "", nil); r.status != 400 {
		t.Fatalf("sid after overlap: %d", r.status)
	}
}

func TestClientCloseReleasesPendingGET(t *testing.T) {
	ts, h := newTestServer(t, Options{})
	sid, _ := handshake(t, ts.URL)
	url := ts.URL + "/?EIO=4&transport=polling&sid=" + sid
	first := make(chan resp, 1)
	go func() { first <- do(t, "GET", url, "", nil) }()
	time.Sleep(100 * time.Millisecond)
	do(t, "POST", url, "1", nil)
	if r := <-first; r.body != "6" {
		t.Fatalf("pending GET after close: %q", r.body)
	}
	if reason := waitClose(t, h); reason != ReasonTransportClose {
		t.Fatalf("reason %q", reason)
	}
}

func TestPingTimeout(t *testing.T) {
	ts, h := newTestServer(t, Options{PingInterval: 50 * time.Millisecond, PingTimeout: 50 * time.Millisecond})
	sid, _ := handshake(t, ts.URL)
	url := ts.URL + "/?EIO=4&transport=polling&sid=" + sid
	if r := do(t, "GET", url, "", nil); r.body != "2" {
		t.Fatalf("expected ping, got %q", r.body)
	}
	do(t, "POST", url, "3", nil) // pong: the session lives on
	if r := do(t, "GET", url, "", nil); r.body != "2" {
		t.Fatalf("expected second ping, got %q", r.body)
	}
	// No pong this time.
	if reason := waitClose(t, h); reason != ReasonPingTimeout {
		t.Fatalf("reason %q", reason)
	}
}

func wsURL(ts *httptest.Server) string { return "ws" + strings.TrimPrefix(ts.URL, "http") }

var readText = testkit.ReadWS

func TestWebSocketOversizedFrameCloses1009(t *testing.T) {
	ts, h := newTestServer(t, Options{MaxPayload: 100})
	c, _, err := websocket.DefaultDialer.Dial(wsURL(ts)+"/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if open := readText(t, c); !strings.Contains(open, `"upgrades":[]`) {
		t.Fatalf("open: %q", open)
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("4"+strings.Repeat("x", 200)))
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, _, err = c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("want close 1009, got %v", err)
	}
	waitClose(t, h)
}

func TestWebSocketEchoTextAndBinary(t *testing.T) {
	ts, _ := newTestServer(t, Options{})
	c, _, err := websocket.DefaultDialer.Dial(wsURL(ts)+"/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readText(t, c)
	_ = c.WriteMessage(websocket.TextMessage, []byte("4hello"))
	if got := readText(t, c); got != "4hello" {
		t.Fatalf("echo %q", got)
	}
	_ = c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	kind, b, err := c.ReadMessage()
	if err != nil || kind != websocket.BinaryMessage || string(b) != "\x01\x02\x03" {
		t.Fatalf("binary echo: %v %v %v", kind, b, err)
	}
}

func TestUpgradeFromPolling(t *testing.T) {
	ts, h := newTestServer(t, Options{})
	sid, _ := handshake(t, ts.URL)
	url := ts.URL + "/?EIO=4&transport=polling&sid=" + sid

	pending := make(chan resp, 1)
	go func() { pending <- do(t, "GET", url, "", nil) }()
	time.Sleep(50 * time.Millisecond)

	c, _, err := websocket.DefaultDialer.Dial(wsURL(ts)+"/?EIO=4&transport=websocket&sid="+sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.WriteMessage(websocket.TextMessage, []byte("2probe"))
	if got := readText(t, c); got != "3probe" {
		t.Fatalf("probe answer %q", got)
	}
	if r := <-pending; r.body != "6" {
		t.Fatalf("pending GET during upgrade: %q", r.body)
	}
	// Something queued while upgrading is flushed on the WebSocket.
	do(t, "POST", url, "4buffered", nil)
	_ = c.WriteMessage(websocket.TextMessage, []byte("5"))
	if got := readText(t, c); got != "4buffered" {
		t.Fatalf("flushed after upgrade %q", got)
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("4over-ws"))
	if got := readText(t, c); got != "4over-ws" {
		t.Fatalf("echo over ws %q", got)
	}
	if r := do(t, "GET", url, "", nil); r.status != 400 {
		t.Fatalf("polling after upgrade: %d", r.status)
	}
	// A second WebSocket for the same sid is accepted and closed at once.
	c2, _, err := websocket.DefaultDialer.Dial(wsURL(ts)+"/?EIO=4&transport=websocket&sid="+sid, nil)
	if err != nil {
		t.Fatalf("second websocket: %v", err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := c2.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("second websocket not closed: %v", err)
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("4still"))
	if got := readText(t, c); got != "4still" {
		t.Fatalf("first websocket after the second: %q", got)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.closed) != 0 {
		t.Fatalf("session closed during upgrade: %v", h.closed)
	}
}

func TestCookies(t *testing.T) {
	ts, _ := newTestServer(t, Options{
		SessionCookie:  &Cookie{Name: "io", Path: "/", HTTPOnly: true, SameSite: http.SameSiteLaxMode},
		InstanceCookie: &Cookie{Name: "sf_instance", Path: "/"},
		InstanceID:     "instance-abc",
	})
	r := do(t, "GET", ts.URL+"/?EIO=4&transport=polling", "", nil)
	cookies := r.header.Values("Set-Cookie")
	var sid string
	_ = json.Unmarshal([]byte(r.body[1:]), &struct{ Sid *string }{&sid})
	want := []string{"io=" + sid + "; Path=/; HttpOnly; SameSite=Lax", "sf_instance=instance-abc; Path=/"}
	if len(cookies) != 2 || cookies[0] != want[0] || cookies[1] != want[1] {
		t.Fatalf("cookies %q, want %q", cookies, want)
	}
}

func TestSlowConsumerIsClosed(t *testing.T) {
	ts, h := newTestServer(t, Options{SendQueue: 4})
	sid, _ := handshake(t, ts.URL)
	url := ts.URL + "/?EIO=4&transport=polling&sid=" + sid
	// Five echoes queue up with nobody polling: the fifth overflows.
	do(t, "POST", url, "4a\x1e4b\x1e4c\x1e4d\x1e4e", nil)
	if reason := waitClose(t, h); reason != ReasonSlowConsumer {
		t.Fatalf("reason %q", reason)
	}
}

func TestWebSocketBadPacketClosesWithCloseFrame(t *testing.T) {
	ts, h := newTestServer(t, Options{})
	c, _, err := websocket.DefaultDialer.Dial(wsURL(ts)+"/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readText(t, c)
	_ = c.WriteMessage(websocket.TextMessage, []byte("abc"))
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("want close 1000, got %v", err)
	}
	if reason := waitClose(t, h); reason != ReasonParseError {
		t.Fatalf("reason %q", reason)
	}
}
