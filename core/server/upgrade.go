package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// upgradeListener takes WebSocket handshakes off net/http's path. A
// connection whose first request asks for a WebSocket is parsed here
// (http.ReadRequest on a pooled buffer) and handed to the same handler
// with a minimal ResponseWriter; every other connection goes to net/http
// with the bytes read so far replayed.
//
// Why: net/http gives a hijacked connection's 4 KiB read and write buffers
// away and allocates a third, so each WebSocket handshake left ~13 KB of
// garbage, most of all the bytes a handshake allocated, and the collector
// spent ~12% of the CPU of a handshake on it.
type upgradeListener struct {
	net.Listener
	handler http.Handler
	log     *logrus.Entry
	timeout time.Duration // to read the request head
	health  *acceptHealth

	conns   chan net.Conn // for net/http
	failed  chan error    // the inner Accept's last error
	done    chan struct{}
	closing sync.Once
	readers sync.Pool // *bufio.Reader, maxHead
}

// maxHead bounds a request head read here; a larger one goes to net/http,
// which answers 431.
const maxHead = 4096

func newUpgradeListener(l net.Listener, h http.Handler, log *logrus.Entry, timeout time.Duration, health *acceptHealth) *upgradeListener {
	u := &upgradeListener{Listener: l, handler: h, log: log, timeout: timeout, health: health,
		conns: make(chan net.Conn), failed: make(chan error, 1), done: make(chan struct{})}
	go u.acceptLoop()
	return u
}

// acceptLoop never gives up while the listener is open: running out of
// descriptors (EMFILE, ENFILE), buffers or memory is a moment an attacker
// or a burst can cause, not a reason to stop serving for good. It backs
// off (5 ms doubling to 1 s), counts, logs at most once a second, and the
// instance reports itself unready meanwhile (acceptHealth).
func (u *upgradeListener) acceptLoop() {
	var delay time.Duration
	var lastLog time.Time
	for {
		c, err := u.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				u.failed <- err
				return
			}
			u.health.failed(err)
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if time.Since(lastLog) >= time.Second {
				lastLog = time.Now()
				u.log.WithError(err).WithFields(logrus.Fields{"accept_errors": u.health.errors.Load(), "retry_in": delay.String()}).
					Warn("accept failed; backing off")
			}
			select {
			case <-time.After(delay):
			case <-u.done:
				u.failed <- net.ErrClosed
				return
			}
			continue
		}
		if delay > 0 {
			delay = 0
			u.log.WithField("accept_errors", u.health.errors.Load()).Info("accepting again")
		}
		go u.classify(c)
	}
}

// acceptHealth is what the accept loop tells the rest of the instance.
type acceptHealth struct {
	errors   atomic.Uint64 // accept calls that failed, since start
	lastFail atomic.Int64  // unix nanos of the latest failure, 0: none
	lastErr  atomic.Pointer[string]

	tlsErrors atomic.Uint64 // TLS handshakes that failed (tls.go)
}

// acceptUnreadyFor is how long after the latest failed accept the instance
// stays unready: long enough for a load balancer's check to see it, short
// enough to come back by itself once descriptors are free again.
const acceptUnreadyFor = 5 * time.Second

func (h *acceptHealth) failed(err error) {
	h.errors.Add(1)
	h.lastFail.Store(time.Now().UnixNano())
	msg := err.Error()
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg = errno.Error()
	}
	h.lastErr.Store(&msg)
}

// failing returns why accepting failed within acceptUnreadyFor, or "".
func (h *acceptHealth) failing() string {
	last := h.lastFail.Load()
	if last == 0 || time.Since(time.Unix(0, last)) > acceptUnreadyFor {
		return ""
	}
	if msg := h.lastErr.Load(); msg != nil {
		return "accepting connections fails: " + *msg
	}
	return "accepting connections fails"
}

// Accept returns the connections that are not WebSocket handshakes.
func (u *upgradeListener) Accept() (net.Conn, error) {
	select {
	case c := <-u.conns:
		return c, nil
	case err := <-u.failed:
		u.failed <- err // for the next call
		return nil, err
	case <-u.done:
		return nil, net.ErrClosed
	}
}

func (u *upgradeListener) Close() error {
	u.closing.Do(func() { close(u.done) })
	return u.Listener.Close()
}

// classify reads the connection's first request head and routes it.
func (u *upgradeListener) classify(c net.Conn) {
	br, _ := u.readers.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(nil, maxHead)
	}
	br.Reset(c)
	defer func() {
		br.Reset(nil)
		u.readers.Put(br)
	}()
	if err := handshakeTLS(c, u.timeout); err != nil {
		u.health.tlsErrors.Add(1)
		u.log.WithError(err).WithField("remote", c.RemoteAddr().String()).Debug("connection refused")
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(u.timeout))
	head, complete, err := peekHead(br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// The head did not arrive in time. net/http would wait its own
		// timeout again before closing; close now, as it would then.
		c.Close()
		return
	}
	if !complete || !isWebSocketRequest(head) {
		// net/http's, with what was read; it answers errors and timeouts.
		_ = c.SetReadDeadline(time.Time{})
		var pending []byte
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			pending = bytes.Clone(b)
		}
		select {
		case u.conns <- &replayConn{Conn: c, pending: pending}:
		case <-u.done:
			c.Close()
		}
		return
	}
	req, err := http.ReadRequest(br)
	if err != nil || br.Buffered() > 0 || (req.ProtoAtLeast(1, 1) && req.Host == "") {
		// A client must wait for the 101 before it sends anything; and
		// HTTP/1.1 needs a Host (net/http's rule too).
		w := &upgradeWriter{conn: c, header: make(http.Header)}
		http.Error(w, "bad WebSocket handshake", http.StatusBadRequest)
		w.finish()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	req.RemoteAddr = c.RemoteAddr().String()
	req.TLS = tlsState(c)
	u.serve(c, req)
}

// serve runs the handler for one WebSocket handshake request.
func (u *upgradeListener) serve(c net.Conn, req *http.Request) {
	w := &upgradeWriter{conn: c, header: make(http.Header)}
	defer func() {
		if p := recover(); p != nil {
			u.log.WithField("panic", fmt.Sprint(p)).Error("panic in a WebSocket handshake")
			if !w.hijacked {
				c.Close()
			}
		}
	}()
	u.handler.ServeHTTP(w, req)
	if !w.hijacked {
		w.finish()
	}
}

// peekHead waits until br holds a whole request head (up to maxHead) and
// returns the bytes buffered; complete is false on an error or a timeout
// (both returned) or a head larger than maxHead.
func peekHead(br *bufio.Reader) (head []byte, complete bool, err error) {
	for n := 1; ; n = br.Buffered() + 1 {
		if _, err := br.Peek(n); err != nil { // waits for more bytes
			b, _ := br.Peek(br.Buffered())
			return b, false, err
		}
		b, _ := br.Peek(br.Buffered()) // all that arrived
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			return b[:i+4], true, nil
		}
		if len(b) >= maxHead {
			return b, false, nil
		}
	}
}

// isWebSocketRequest: a GET with "Upgrade: websocket" (any case).
func isWebSocketRequest(head []byte) bool {
	if !bytes.HasPrefix(head, []byte("GET ")) {
		return false
	}
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("upgrade")) {
			return bytes.EqualFold(bytes.TrimSpace(value), []byte("websocket"))
		}
	}
	return false
}

// replayConn returns pending before reading on.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// upgradeWriter is the ResponseWriter of a handshake served here: it hands
// the connection over (Hijack), or writes a plain response and closes.
type upgradeWriter struct {
	conn     net.Conn
	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

func (w *upgradeWriter) Header() http.Header { return w.header }

func (w *upgradeWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *upgradeWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	// No buffers: the request was read whole, and core/engineio reads and
	// writes the connection itself.
	return w.conn, nil, nil
}

// finish writes the response of a handshake that was refused, and closes.
func (w *upgradeWriter) finish() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 " + strconv.Itoa(w.status) + " " + http.StatusText(w.status) + "\r\n")
	w.header.Set("Content-Length", strconv.Itoa(w.body.Len()))
	w.header.Set("Connection", "close")
	_ = w.header.Write(&b)
	b.WriteString("\r\n")
	b.Write(w.body.Bytes())
	_ = w.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = w.conn.Write(b.Bytes())
	w.conn.Close()
}
