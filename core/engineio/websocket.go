package engineio

import (
	"net"
	"syscall"
	"time"
)

// writeWait bounds one WebSocket write batch; a peer that does not drain its
// socket within it is disconnected.
const writeWait = 10 * time.Second

// wsTransport is a session's WebSocket: the connection, its write path
// (wswrite.go), its reader (wsread.go) and its place in the server's poller.
// It lives inside its Session (Session.ws), zero until attachLocked; the
// queue it writes from and the session's state stay in the Session, under
// Session.mu.
//
// Who guards what:
//
//   - s, nc, raw, fd, writeFn, reg.token, reg.fd: set by attachLocked
//     under Session.mu, in the hold that makes the session a WebSocket
//     one; read-only after.
//   - writing: Session.mu. Whoever sets it holds the writer role: an
//     inline Send, a Batch until its Flush, or the writer goroutine.
//   - pending, deadline: owned by the writer role's holder.
//   - reg.added: the poller's lock.
//   - reading (nc's read side, rb): the one reader at a
//     time: the handshake's goroutine, then readLoop goroutines, handed
//     over through the poller (see wsread.go).
type wsTransport struct {
	// What an inline write reads, first (see Session's layout).
	raw     syscall.RawConn // nil: no raw writes, no poller (see wswrite.go)
	pending [][]byte        // what an inline write left unwritten
	writing bool            // a writer (inline, a Batch, or the goroutine) holds the role
	fd      int32           // raw's descriptor, for writes under Session.mu (wswrite.go)

	s        *Session
	nc       net.Conn
	rb       readBuf // the WebSocket's read buffer (wsframe.go)
	reg      pollReg // the socket in the poller
	writeFn  func()  // t.writeLoop, bound once: `go t.writeLoop()` would allocate per burst
	deadline int64   // current write deadline, ns since srv.epoch; 0: none
}

// attachLocked makes nc, with what was read of it into rb, s's
// transport. Called under s.mu.
func (t *wsTransport) attachLocked(s *Session, nc net.Conn, rb readBuf) {
	t.s = s
	t.nc = nc
	t.rb = rb
	t.writeFn = t.writeLoop
	if rawWrites {
		if sc, ok := nc.(syscall.Conn); ok {
			t.raw, _ = sc.SyscallConn()
		}
		if t.raw != nil {
			_ = t.raw.Control(func(fd uintptr) { t.fd = int32(fd) })
			t.reg.fd = t.fd
			t.reg.token = s.srv.pollTokens.Add(1)
		}
	}
}

// onPing answers a client's ping through the session's writer, so that no
// other goroutine writes to the connection.
func (t *wsTransport) onPing(data []byte) {
	t.s.Send(newPong(data))
}

// kickLocked starts the writer goroutine for what is queued, unless a
// writer is under way. Called under Session.mu.
func (t *wsTransport) kickLocked() {
	if !t.writing && t.writeFn != nil {
		t.writing = true
		go t.writeFn()
	}
}

// close takes the socket out of the poller and closes it, first sending a
// close frame with code (0: none); Session.close calls it once the session
// is marked closed.
func (t *wsTransport) close(code int) {
	t.unpark()
	// A close frame first, as Node does, so the peer sees 1000 (or the
	// echo of its own close, or why it failed) rather than an abnormal
	// 1006; but not when the read failed (the peer is gone): that write
	// only costs a syscall, a tenth of a short-lived connection's CPU.
	if code != 0 {
		writeClose(t.nc, code, 100*time.Millisecond)
	}
	_ = t.nc.Close()
}

// writeClose writes a close frame with code under a write deadline of
// wait; only where no writer can be under way (see wsTransport).
func writeClose(nc net.Conn, code int, wait time.Duration) {
	_ = nc.SetWriteDeadline(time.Now().Add(wait))
	_, _ = nc.Write(closeFrame(code))
}
