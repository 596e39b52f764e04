package engineio

import (
	"bufio"
	"net"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// WebSocket writes bypass gorilla's writer: every Message carries its whole
// frame, and a session writes queued frames with one writev.
//
// Send writes inline, on the caller's goroutine, when no write is under way:
// one non-blocking attempt, which on a healthy connection takes everything.
// Only what the socket did not take (a full send buffer) goes to a writer
// goroutine that blocks under the write deadline. So a broadcast costs one
// syscall per recipient and no goroutine, and frames that pile up behind a
// slow peer leave in one writev each round.

// wsWriter is the state of one write; pooled, with its callback bound once,
// so a write allocates nothing.
type wsWriter struct {
	bufs  [][]byte
	off   int // bytes of bufs written
	total int
	wait  bool // block until written (the writer goroutine) or not (inline)
	err   error
	fn    func(fd uintptr) bool
	iov   iovecs
}

func newWSWriter() any {
	w := &wsWriter{}
	w.fn = w.write
	return w
}

// write is the syscall.RawConn callback: returning false waits for the
// socket to become writable (under the deadline) and calls it again.
func (w *wsWriter) write(fd uintptr) bool {
	for w.off < w.total {
		n, err := writev(&w.iov, fd, w.bufs, w.off)
		switch err {
		case nil:
			w.off += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return !w.wait
		default:
			w.err = err
			return true
		}
	}
	return true
}

// rest returns what is left to write, as a fresh slice (the writer's
// scratch goes back to the pool).
func (w *wsWriter) rest() [][]byte {
	off := w.off
	var out [][]byte
	for _, b := range w.bufs {
		if off >= len(b) {
			off -= len(b)
			continue
		}
		out = append(out, b[off:])
		off = 0
	}
	return out
}

func (w *wsWriter) reset() {
	clear(w.bufs)
	w.bufs, w.off, w.total, w.err = w.bufs[:0], 0, 0, nil
}

// attachWSLocked makes ws the session's transport for writes.
func (s *Session) attachWSLocked(ws *websocket.Conn, rd *bufio.Reader) {
	s.ws = ws
	s.rd = rd
	s.writeFn = s.wsWrite
	if rawWrites {
		if sc, ok := ws.NetConn().(syscall.Conn); ok {
			s.raw, _ = sc.SyscallConn()
		}
		if s.raw != nil {
			_ = s.raw.Control(func(fd uintptr) { s.fd = int(fd) })
			s.pollToken = s.srv.pollTokens.Add(1)
		}
	}
	// gorilla would answer pings itself, writing around our writer and
	// moving the connection's write deadline.
	ws.SetPingHandler(s.onWSPing)
}

func (s *Session) onWSPing(data string) error {
	s.Send(newPong(data))
	return nil
}

// writeFrames writes the pending remainder of an earlier inline write and
// the batch's frames. wait=false makes one non-blocking attempt and keeps
// what did not go out in s.pending. Only the session's writer calls it.
func (s *Session) writeFrames(batch []*Message, wait bool) error {
	w := s.srv.writers.Get().(*wsWriter)
	defer func() {
		w.reset()
		s.srv.writers.Put(w)
	}()
	w.bufs = append(w.bufs, s.pending...)
	s.pending = nil
	for _, m := range batch {
		w.bufs = append(w.bufs, m.ws)
	}
	for _, b := range w.bufs {
		w.total += len(b)
	}
	if w.total == 0 {
		return nil
	}
	w.wait = wait
	if s.raw == nil {
		// No raw socket (not Linux, or not TCP): blocking writes only.
		bufs := net.Buffers(w.bufs)
		_, err := bufs.WriteTo(s.ws.NetConn())
		return err
	}
	if err := s.raw.Write(w.fn); err != nil {
		return err
	}
	if w.err != nil {
		return w.err
	}
	if w.off < w.total {
		s.pending = w.rest()
	}
	return nil
}

// writeInline is Send's path when no write is under way: the caller
// writes batch itself, and starts the writer goroutine only for what the
// socket did not take or what was queued meanwhile.
func (s *Session) writeInline(batch []*Message) {
	if !s.wrote(batch, s.writeFrames(batch, false)) {
		return
	}
	if len(s.pending) > 0 || len(s.queue) > 0 || s.closing {
		go s.writeFn()
		s.mu.Unlock()
		return
	}
	s.writing = false
	s.mu.Unlock()
}

// wsWrite is the writer goroutine: it runs only while there is something
// to write that could not go out inline, so an idle connection has none.
func (s *Session) wsWrite() {
	conn := s.ws.NetConn()
	s.mu.Lock()
	for {
		if len(s.queue) == 0 && len(s.pending) == 0 {
			if !s.deadline.IsZero() {
				// Inline writes never wait, and must not find an
				// expired deadline. Cleared while still the writer:
				// the next one may start as soon as the lock is free.
				s.deadline = time.Time{}
				_ = conn.SetWriteDeadline(s.deadline)
			}
			s.writing = false
			closing := s.closing
			s.mu.Unlock()
			if closing {
				_ = s.ws.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				s.closeNow(ReasonForcedClose)
			}
			return
		}
		batch := s.takeLocked()
		s.mu.Unlock()

		// Re-arming the deadline costs a timer update; do it only when less
		// than half of writeWait is left.
		if now := time.Now(); s.deadline.Sub(now) < writeWait/2 {
			s.deadline = now.Add(writeWait)
			_ = conn.SetWriteDeadline(s.deadline)
		}
		if !s.wrote(batch, s.writeFrames(batch, true)) {
			return
		}
	}
}

// wrote ends a write: it takes s.mu and recycles batch. On success it
// returns true with s.mu held; a failed write gives up the writer role and
// closes the session (false, s.mu released).
func (s *Session) wrote(batch []*Message, err error) bool {
	s.mu.Lock()
	s.recycleLocked(batch)
	if err != nil {
		s.writing = false
		s.mu.Unlock()
		s.closeNow(ReasonTransportError)
		return false
	}
	return true
}
