package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/routing"
)

const testConfig = `
server {
  ping_interval   = "300ms"
  ping_timeout    = "200ms"
  connect_timeout = "500ms"
  max_payload     = 1000000
}
namespace "/" {
  on_connect {
    emit "auth" { args = [auth] }
  }
  event "join" {
    join {
      room  = try(args[0].room, args[0])
      allow = ["lobby", "room:*"]
    }
  }
  event "chat:message" {
    broadcast { to = args[0].room }
  }
  event "message" {
    reply { event = "message-back" }
  }
  event "message-with-ack" { ack = args }
}
namespace "/custom" {}
`

func newTestInstance(t testing.TB, src string) (*Server, *httptest.Server) {
	t.Helper()
	return newPluginInstance(t, src, routing.Plugins{})
}

// newPluginInstance serves src with in-process plugins (SF_TEST_LOG=1 shows
// the server's debug log).
func newPluginInstance(t testing.TB, src string, p routing.Plugins) (*Server, *httptest.Server) {
	t.Helper()
	cfg := parseTestConfig(t, src)
	return serveTest(t, newServer(cfg, testLog(), "test", p))
}

func parseTestConfig(t testing.TB, src string) *config.Config {
	t.Helper()
	cfg, diags := config.Parse([]byte(src), "test.hcl")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return cfg
}

// testLog discards the server's log unless SF_TEST_LOG is set.
func testLog() *logrus.Entry {
	log := logrus.New()
	log.SetOutput(io.Discard)
	if os.Getenv("SF_TEST_LOG") != "" {
		log.SetOutput(os.Stderr)
		log.SetLevel(logrus.DebugLevel)
	}
	return logrus.NewEntry(log)
}

// serveTest serves s on a test HTTP server, closed when the test ends.
func serveTest(t testing.TB, s *Server) (*Server, *httptest.Server) {
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// wsClient is a bare Engine.IO/Socket.IO client speaking frames directly, to
// drive the protocol where the real client would never go.
type wsClient struct {
	t *testing.T
	c *websocket.Conn
}

func dialWS(t *testing.T, ts *httptest.Server) *wsClient {
	t.Helper()
	return openWS(t, websocket.DefaultDialer, "ws"+strings.TrimPrefix(ts.URL, "http"))
}

// openWS opens an Engine.IO session over WebSocket at base (ws:// or
// wss://, host and port) with d, and reads its open packet.
func openWS(t *testing.T, d *websocket.Dialer, base string) *wsClient {
	t.Helper()
	c, _, err := d.Dial(base+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	w := &wsClient{t, c}
	if open := w.read(); !strings.HasPrefix(open, `0{"sid":"`) {
		t.Fatalf("open packet %q", open)
	}
	return w
}

func (w *wsClient) send(s string) {
	if err := w.c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		w.t.Fatal(err)
	}
}

// read returns the next frame that is not a ping (pings are answered).
func (w *wsClient) read() string {
	w.t.Helper()
	for {
		_ = w.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		kind, b, err := w.c.ReadMessage()
		if err != nil {
			w.t.Fatalf("read: %v", err)
		}
		if kind == websocket.TextMessage && string(b) == "2" {
			w.send("3")
			continue
		}
		return string(b)
	}
}

// closed waits for the server to end the connection.
func (w *wsClient) closed() bool {
	w.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		_ = w.c.SetReadDeadline(deadline)
		_, b, err := w.c.ReadMessage()
		if err != nil {
			return true
		}
		if string(b) == "2" {
			w.send("3")
		}
	}
	return false
}

func TestSocketIOConnectAndErrors(t *testing.T) {
	_, ts := newTestInstance(t, testConfig)

	t.Run("connect with auth payload", func(t *testing.T) {
		c := dialWS(t, ts)
		c.send(`40{"token":"abc","n":1}`)
		if got := c.read(); !strings.HasPrefix(got, `40{"sid":"`) || len(got) != len(`40{"sid":"`)+20+2 {
			t.Fatalf("connect reply %q", got)
		}
		if got := c.read(); got != `42["auth",{"token":"abc","n":1}]` {
			t.Fatalf("auth emit %q", got)
		}
	})
	t.Run("auth is {} when absent; namespace without trailing comma", func(t *testing.T) {
		c := dialWS(t, ts)
		c.send(`40/custom`)
		if got := c.read(); !strings.HasPrefix(got, `40/custom,{"sid":"`) {
			t.Fatalf("connect reply %q", got)
		}
		c.send(`41/custom`)
		c.send(`40`)
		if got := c.read(); !strings.HasPrefix(got, `40{"sid":"`) {
			t.Fatalf("second namespace after leaving /custom: %q", got)
		}
		if got := c.read(); got != `42["auth",{}]` {
			t.Fatalf("auth emit %q", got)
		}
	})
	t.Run("unknown namespace", func(t *testing.T) {
		c := dialWS(t, ts)
		c.send(`40/random,`)
		if got := c.read(); got != `44/random,{"message":"Invalid namespace"}` {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("event before connect closes", func(t *testing.T) {
		c := dialWS(t, ts)
		c.send(`42["message","x"]`)
		if !c.closed() {
			t.Fatal("connection stayed open")
		}
	})
	t.Run("second connect closes", func(t *testing.T) {
		c := dialWS(t, ts)
		c.send(`40`)
		c.read()
		c.read()
		c.send(`40`)
		if !c.closed() {
			t.Fatal("connection stayed open")
		}
	})
	for _, bad := range []string{`4abc`, `42{}`, `42abc["x"]`, `49`, `42["connect"]`, `43["no id"]`, `451-["x"]`} {
		t.Run("malformed "+bad, func(t *testing.T) {
			c := dialWS(t, ts)
			c.send(`40`)
			c.read()
			c.read()
			c.send(bad)
			if bad == `451-["x"]` {
				c.send(`4text while waiting for attachment`)
			}
			if !c.closed() {
				t.Fatalf("%s did not close the connection", bad)
			}
		})
	}
	t.Run("leaving the only namespace keeps the session", func(t *testing.T) {
		c := dialWS(t, ts)
		c.send(`40`)
		c.read()
		c.read()
		c.send(`41`)
		_ = c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, b, err := c.c.ReadMessage()
		if err != nil || string(b) != "2" {
			t.Fatalf("want the next ping, got %q %v", b, err)
		}
	})
	t.Run("connect timeout", func(t *testing.T) {
		c := dialWS(t, ts)
		start := time.Now()
		if !c.closed() {
			t.Fatal("connection without CONNECT stayed open")
		}
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Fatalf("closed after %v, before connect_timeout", d)
		}
	})
}

func TestEventsAcksAndBinary(t *testing.T) {
	_, ts := newTestInstance(t, testConfig)
	c := dialWS(t, ts)
	c.send(`40`)
	c.read()
	c.read()

	// Ack with the same arguments, byte-exact.
	c.send(`4212["message-with-ack",{"b":1,"a":[true,null,"é\u00e9"]},2]`)
	if got := c.read(); got != `4312[{"b":1,"a":[true,null,"é\u00e9"]},2]` {
		t.Fatalf("ack %q", got)
	}
	// Reply with binary attachments passed through.
	c.send(`451-["message",{"_placeholder":true,"num":0},"x"]`)
	if err := c.c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if got := c.read(); got != `451-["message-back",{"_placeholder":true,"num":0},"x"]` {
		t.Fatalf("binary reply header %q", got)
	}
	if got := c.read(); got != "\x01\x02\x03" {
		t.Fatalf("attachment %q", got)
	}
	// Binary ack.
	c.send(`451-7["message-with-ack",{"_placeholder":true,"num":0}]`)
	_ = c.c.WriteMessage(websocket.BinaryMessage, []byte{9})
	if got := c.read(); got != `461-7[{"_placeholder":true,"num":0}]` {
		t.Fatalf("binary ack %q", got)
	}
	if got := c.read(); got != "\x09" {
		t.Fatalf("ack attachment %q", got)
	}
}

func TestRoomsAndRules(t *testing.T) {
	_, ts := newTestInstance(t, testConfig)
	connect := func() *wsClient {
		c := dialWS(t, ts)
		c.send(`40`)
		c.read()
		c.read()
		return c
	}
	a, b, outsider := connect(), connect(), connect()
	a.send(`421["join","lobby"]`)
	if got := a.read(); got != `431[{"ok":true}]` {
		t.Fatalf("join ack %q", got)
	}
	b.send(`421["join",{"room":"lobby"}]`)
	if got := b.read(); got != `431[{"ok":true}]` {
		t.Fatalf("join ack %q", got)
	}
	outsider.send(`422["join","secret"]`)
	if got := outsider.read(); got != `432[{"ok":false,"error":"room not allowed"}]` {
		t.Fatalf("denied join ack %q", got)
	}
	// A non-member cannot broadcast into the room.
	outsider.send(`42["chat:message",{"room":"lobby","text":"intrusion"}]`)
	a.send(`42["chat:message",{"room":"lobby","text":"hi"}]`)
	want := `42["chat:message",{"room":"lobby","text":"hi"}]`
	if got := a.read(); got != want {
		t.Fatalf("sender got %q", got)
	}
	if got := b.read(); got != want {
		t.Fatalf("member got %q", got)
	}
	// Unknown events are dropped; the connection stays usable.
	outsider.send(`42["no-such-event",1]`)
	outsider.send(`423["message-with-ack","still here"]`)
	if got := outsider.read(); got != `433["still here"]` {
		t.Fatalf("after unknown event %q", got)
	}
}

func TestHealth(t *testing.T) {
	_, ts := newTestInstance(t, testConfig)
	res, err := http.Get(ts.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"instance_id":"instance-`) {
		t.Fatalf("health: %d %s", res.StatusCode, b)
	}
}
