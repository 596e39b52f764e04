package engineio

import (
	"net"
	"syscall"
	"time"
)

// WebSocket writes go straight to the socket: every Message carries its whole
// frame, and a session writes queued frames with one writev.
//
// Send writes inline, on the caller's goroutine, when no write is under way:
// one non-blocking attempt, which on a healthy connection takes everything.
// Only what the socket did not take (a full send buffer) goes to a writer
// goroutine that blocks under the write deadline. So a broadcast costs one
// syscall per recipient and no goroutine, and frames that pile up behind a
// slow peer leave in one writev each round.
//
// Inline writes run under Session.mu and write the descriptor itself
// (wsTransport.fd), without raw.Control's reference count on the netFD:
// that is a cache line and two atomic operations per recipient of a
// broadcast, about a tenth of its user time. It is safe because closeCode
// closes the connection only after marking the session closed under the
// same lock (connClosedLocked): a write under the lock that finds it open
// cannot meet a closed, or reused, descriptor. Only the writer goroutine,
// which blocks, writes outside the lock, through raw.Write.

// wsWriter is the state of one write; pooled, with its callback bound once,
// so a write allocates nothing.
type wsWriter struct {
	bufs  [][]byte
	off   int // bytes of bufs written
	total int
	wait  bool // block until written (the writer goroutine) or not (inline)
	err   error
	fn    func(fd uintptr) bool // w.write, bound once: raw.Write's callback
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

// writeFrames writes the pending remainder of an earlier inline write and
// the batch's frames. wait=false makes one non-blocking attempt, under
// Session.mu, and keeps what did not go out in t.pending. Only the writer
// role's holder calls it.
func (t *wsTransport) writeFrames(srv *Server, batch []*Message, wait bool) error {
	w := srv.writers.Get().(*wsWriter)
	defer func() {
		w.reset()
		srv.writers.Put(w)
	}()
	w.bufs = append(w.bufs, t.pending...)
	t.pending = nil
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
	if t.raw == nil {
		// No raw socket (not Linux, or not TCP): blocking writes only.
		bufs := net.Buffers(w.bufs)
		_, err := bufs.WriteTo(t.nc)
		return err
	}
	if wait {
		if err := t.raw.Write(w.fn); err != nil {
			return err
		}
	} else {
		// Under Session.mu, the connection open: see the top of the file.
		w.write(uintptr(t.fd))
	}
	if w.err != nil {
		return w.err
	}
	if w.off < w.total {
		t.pending = w.rest()
	}
	return nil
}

// writeInline is Send's path when no write is under way: the caller holds
// the writer role, writes batch itself, and hands the role to the writer
// goroutine only for what the socket did not take or what was queued
// meanwhile.
//
// It takes its session rather than reading t.s: a broadcast's delivery
// then touches only the session's first two cache lines (Session).
func (t *wsTransport) writeInline(s *Session, batch []*Message) {
	var err error
	s.mu.Lock()
	if !s.connClosedLocked() {
		err = t.writeFrames(s.srv, batch, false)
	}
	s.recycleLocked(batch)
	more := err == nil && (len(t.pending) > 0 || len(s.queue) > 0 || s.closing)
	if !more {
		t.writing = false // failed, or nothing left
	}
	s.mu.Unlock()
	switch {
	case err != nil:
		s.closeNow(ReasonTransportError)
	case more:
		go t.writeFn()
	}
}

// directLocked is Send's path to an idle WebSocket with nothing queued:
// msgs are written at once, under s.mu (held by the caller, released
// here), with no queue, writer or pool in between: one system call.
// What the socket does not take goes to the writer goroutine.
func (t *wsTransport) directLocked(s *Session, msgs []*Message) bool {
	n, total, err := writeMsgs(t.fd, msgs)
	if err != nil {
		s.mu.Unlock()
		s.closeNow(ReasonTransportError)
		return false
	}
	if n < total {
		t.pending = unwritten(msgs, n)
		t.kickLocked()
	}
	s.mu.Unlock()
	return true
}

// unwritten returns what is left of msgs' frames after their first n
// bytes.
func unwritten(msgs []*Message, n int) [][]byte {
	out := make([][]byte, 0, len(msgs))
	for _, m := range msgs {
		if n >= len(m.ws) {
			n -= len(m.ws)
			continue
		}
		out = append(out, m.ws[n:])
		n = 0
	}
	return out
}

// writeLoop is the writer goroutine: it runs only while there is something
// to write that could not go out inline, so an idle connection has none.
func (t *wsTransport) writeLoop() {
	var batch []*Message
	var err error
	for {
		var step wsStep
		batch, step = t.next(batch, err)
		switch step {
		case wsFailed:
			t.s.closeNow(ReasonTransportError)
			return
		case wsIdle:
			return
		case wsClosing:
			t.s.closeNow(ReasonForcedClose) // with a close frame, 1000
			return
		}
		// Re-arming the deadline costs a timer update; do it only when less
		// than half of writeWait is left.
		if now := time.Now(); time.Duration(t.deadline)-now.Sub(t.s.srv.epoch) < writeWait/2 {
			t.deadline = int64(now.Sub(t.s.srv.epoch) + writeWait)
			_ = t.nc.SetWriteDeadline(now.Add(writeWait))
		}
		err = t.writeFrames(t.s.srv, batch, true)
	}
}

// wsStep is what the writer goroutine does next.
type wsStep uint8

const (
	wsWrite   wsStep = iota // write the batch next returned
	wsIdle                  // nothing left: the role is given up
	wsClosing               // nothing left and the server closed the session: the role is given up
	wsFailed                // the write failed: the role is given up
)

// next ends the writer goroutine's write of done (nil: none yet), which
// returned err, and in the same hold of Session.mu takes the next batch
// or gives up the writer role.
func (t *wsTransport) next(done []*Message, err error) ([]*Message, wsStep) {
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if done != nil {
		s.recycleLocked(done)
	}
	if err != nil {
		t.writing = false
		return nil, wsFailed
	}
	if len(s.queue) > 0 || len(t.pending) > 0 {
		return s.takeLocked(), wsWrite
	}
	if t.deadline != 0 {
		// Inline writes never wait, and must not find an expired
		// deadline. Cleared while still the writer: the next one may
		// start as soon as the lock is free.
		t.deadline = 0
		_ = t.nc.SetWriteDeadline(time.Time{})
	}
	t.writing = false
	if s.closing {
		return nil, wsClosing
	}
	return nil, wsIdle
}
