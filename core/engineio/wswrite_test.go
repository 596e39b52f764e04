package engineio

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"
	"github.com/socketfleet/socketfleet/core/protocol/eiowire"
)

func dialWS(t *testing.T, ts *httptest.Server) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(wsURL(ts)+"/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	readText(t, c) // open
	return c
}

// Every WebSocket header length (7-bit, 16-bit and 64-bit payload length),
// text and binary, as a standard client decodes them.
func TestWebSocketFrameSizes(t *testing.T) {
	ts, _ := newTestServer(t, Options{MaxPayload: 1 << 20})
	c := dialWS(t, ts)
	for _, n := range []int{0, 1, 124, 125, 126, 127, 65534, 65535, 65536, 300000} {
		text := "4" + strings.Repeat("x", n)
		_ = c.WriteMessage(websocket.TextMessage, []byte(text))
		if got := readText(t, c); got != text {
			t.Fatalf("text of %d bytes: echo of %d bytes", len(text), len(got))
		}
		bin := bytes.Repeat([]byte{0xfe}, n)
		_ = c.WriteMessage(websocket.BinaryMessage, bin)
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		kind, got, err := c.ReadMessage()
		if err != nil || kind != websocket.BinaryMessage || !bytes.Equal(got, bin) {
			t.Fatalf("binary of %d bytes: kind %d, %d bytes, %v", n, kind, len(got), err)
		}
	}
}

// A client WebSocket ping is answered with its data, through the session's
// writer, and the stream stays intact around it.
func TestWebSocketPingGetsPong(t *testing.T) {
	ts, _ := newTestServer(t, Options{})
	c := dialWS(t, ts)
	pong := make(chan string, 1)
	c.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("4after"))
	if got := readText(t, c); got != "4after" {
		t.Fatalf("echo %q", got)
	}
	select {
	case got := <-pong:
		if got != "are you there" {
			t.Fatalf("pong %q", got)
		}
	default:
		t.Fatal("no pong before the echo")
	}
}

// flood is a Handler whose sessions, on "4go", send count messages of size
// bytes from each of senders goroutines: "4<sender>:<seq>:xxxx...". With
// group > 1 each Send carries group messages (as a packet with its binary
// attachments does), and count counts Sends.
type flood struct {
	senders, count, size int
	group                int
	closed               chan string
}

func (f *flood) Open(s *Session) {
	s.SetHandler(func(p eiowire.Packet) {
		if string(p.Data) != "go" {
			return
		}
		for g := 0; g < f.senders; g++ {
			go func() {
				pad := strings.Repeat("x", f.size)
				group := max(f.group, 1)
				msgs := make([]*Message, group)
				for i := 0; i < f.count; i++ {
					for k := range msgs {
						msgs[k] = NewText(eiowire.Message, []byte(fmt.Sprintf("%d:%d:%s", g, i*group+k, pad)))
					}
					if !s.Send(msgs...) {
						return
					}
				}
			}()
		}
	}, func(reason string) { f.closed <- reason })
}

func newFloodServer(t *testing.T, f *flood, opts Options) *httptest.Server {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	opts.Log = logrus.NewEntry(log)
	f.closed = make(chan string, 4)
	ts := httptest.NewServer(NewServer(opts, f))
	t.Cleanup(ts.Close)
	return ts
}

// readFlood reads everything f's senders send and checks it as a user
// would: every message whole, each sender's in order, exactly once, each
// group (f.group > 1) contiguous; and the session still open.
func readFlood(t *testing.T, c *websocket.Conn, f *flood) {
	t.Helper()
	group := max(f.group, 1)
	next := make([]int, f.senders)
	last := -1
	for got := 0; got < f.senders*f.count*group; got++ {
		m := readText(t, c)
		parts := strings.SplitN(strings.TrimPrefix(m, "4"), ":", 3)
		if len(parts) != 3 || len(parts[2]) != f.size || strings.Trim(parts[2], "x") != "" {
			t.Fatalf("message %d damaged: %.40q... (%d bytes)", got, m, len(m))
		}
		g, _ := strconv.Atoi(parts[0])
		i, _ := strconv.Atoi(parts[1])
		if g < 0 || g >= f.senders || i != next[g] {
			t.Fatalf("sender %d: got message %d, want %d", g, i, next[g])
		}
		if i%group != 0 && g != last {
			t.Fatalf("sender %d's group split: message %d after one of sender %d", g, i, last)
		}
		next[g]++
		last = g
	}
	select {
	case reason := <-f.closed:
		t.Fatalf("session closed: %s", reason)
	default:
	}
}

// A client that stops reading fills the socket: inline writes leave a
// remainder, the writer goroutine blocks on it, and when the client reads
// again every message arrives whole, in each sender's order, exactly once.
// With Sends of several frames (one writev each when the socket is idle),
// a write cut short inside a group resumes where it stopped, and each
// group arrives whole and contiguous.
func TestWebSocketBackpressureLosesNothing(t *testing.T) {
	for _, f := range []*flood{
		{senders: 3, count: 300, size: 32 << 10},           // ~29 MB: far more than the socket buffers
		{senders: 3, count: 100, size: 20 << 10, group: 3}, // ~18 MB
	} {
		t.Run(fmt.Sprintf("frames per send %d", max(f.group, 1)), func(t *testing.T) {
			ts := newFloodServer(t, f, Options{SendQueue: 1000})
			c := dialWS(t, ts)
			_ = c.WriteMessage(websocket.TextMessage, []byte("4go"))
			time.Sleep(500 * time.Millisecond) // the senders run into a full socket
			readFlood(t, c, f)
		})
	}
}

// A WebSocket client that never reads is closed once its queue is full;
// the queue is bounded, whatever the socket buffers took.
func TestWebSocketSlowConsumerIsClosed(t *testing.T) {
	f := &flood{senders: 1, count: 10000, size: 64 << 10}
	ts := newFloodServer(t, f, Options{SendQueue: 16})
	c := dialWS(t, ts)
	_ = c.WriteMessage(websocket.TextMessage, []byte("4go"))
	select {
	case reason := <-f.closed:
		if reason != ReasonSlowConsumer {
			t.Fatalf("reason %q", reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a client that never reads was not closed")
	}
}

// Sends from many goroutines to one session, while it writes inline and
// hands over to its writer goroutine, keep each goroutine's order.
func TestWebSocketConcurrentSendsKeepOrder(t *testing.T) {
	f := &flood{senders: 8, count: 2000, size: 16}
	ts := newFloodServer(t, f, Options{SendQueue: 100000})
	c := dialWS(t, ts)
	_ = c.WriteMessage(websocket.TextMessage, []byte("4go"))
	next := make([]int, f.senders)
	for got := 0; got < f.senders*f.count; got++ {
		m := readText(t, c)
		parts := strings.SplitN(strings.TrimPrefix(m, "4"), ":", 3)
		g, _ := strconv.Atoi(parts[0])
		i, _ := strconv.Atoi(parts[1])
		if i != next[g] {
			t.Fatalf("sender %d: got message %d, want %d", g, i, next[g])
		}
		next[g]++
	}
}

// plainConn hides the socket (as TLS or a wrapped connection would): no
// raw writes, no poller, a reader and a writer goroutine per session.
type plainConn struct{ net.Conn }

type plainListener struct{ net.Listener }

func (l plainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return plainConn{c}, nil
}

// Without a raw socket everything still works: echoes of every size,
// order under concurrent senders, backpressure without loss.
func TestWebSocketWithoutRawSocket(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	f := &flood{senders: 4, count: 200, size: 8 << 10, closed: make(chan string, 4)}
	ts := httptest.NewUnstartedServer(NewServer(Options{Log: logrus.NewEntry(log), SendQueue: 1000}, f))
	ts.Listener = plainListener{ts.Listener}
	ts.Start()
	t.Cleanup(ts.Close)
	c := dialWS(t, ts)
	_ = c.WriteMessage(websocket.TextMessage, []byte("4go"))
	time.Sleep(200 * time.Millisecond) // let the socket fill
	next := make([]int, f.senders)
	for got := 0; got < f.senders*f.count; got++ {
		m := readText(t, c)
		parts := strings.SplitN(strings.TrimPrefix(m, "4"), ":", 3)
		if len(parts) != 3 || len(parts[2]) != f.size {
			t.Fatalf("message %d damaged (%d bytes)", got, len(m))
		}
		g, _ := strconv.Atoi(parts[0])
		i, _ := strconv.Atoi(parts[1])
		if i != next[g] {
			t.Fatalf("sender %d: got message %d, want %d", g, i, next[g])
		}
		next[g]++
	}
}

// What a write cut short leaves is the rest of the frames' bytes, from
// wherever it stopped.
func TestUnwrittenIsTheRest(t *testing.T) {
	msgs := []*Message{NewText(eiowire.Message, []byte("ab")), NewBinary([]byte{1, 2, 3}), NewText(eiowire.Message, []byte("cdef"))}
	var whole []byte
	for _, m := range msgs {
		whole = append(whole, m.ws...)
	}
	for n := 0; n < len(whole); n++ {
		var got []byte
		for _, b := range unwritten(msgs, n) {
			if len(b) == 0 {
				t.Fatalf("n=%d: an empty buffer in the rest", n)
			}
			got = append(got, b...)
		}
		if string(got) != string(whole[n:]) {
			t.Fatalf("n=%d: rest %x, want %x", n, got, whole[n:])
		}
	}
}
