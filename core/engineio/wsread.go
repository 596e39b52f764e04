package engineio

import (
	"bufio"
	"io"
	"sync"
)

// How a WebSocket session reads. On Linux an idle session holds no
// goroutine: its socket waits in the server's poller (poller_linux.go),
// which starts a reader when it becomes readable. The reader parks the
// session again once its read buffer is empty, after a whole message or
// control frame (wsframe.go). Without a poller the session keeps one
// reader goroutine; it waits for readability before it reads, on a stack
// shallow enough for the collector to shrink it to 2 KiB.

// readBufferSize is the read buffer of a WebSocket connection while it
// reads: room for a frame header and a control frame's payload (125
// bytes), and 288 is an allocation size class. Payloads larger than the
// buffer are read straight into the message, past it.
const readBufferSize = 288

// A parked connection's read buffer is empty, so it goes back to a pool
// and the connection keeps only its bufio.Reader, zeroed: 288 B less per idle connection. The reader that the poller
// starts takes a buffer again before it reads. Two pools, so that moving
// a buffer in and out allocates nothing: readBufs holds readers with a
// buffer and no source, readShells the zeroed readers that carry them.
var readBufs, readShells sync.Pool

// stashReadBuffer moves rd's buffer, with nothing buffered, to readBufs
// and leaves rd zero (Buffered and Size 0).
func stashReadBuffer(rd *bufio.Reader) {
	sh, _ := readShells.Get().(*bufio.Reader)
	if sh == nil {
		sh = new(bufio.Reader)
	}
	*sh = *rd
	sh.Reset(nil) // no reference to the connection from the pool
	readBufs.Put(sh)
	*rd = bufio.Reader{}
}

// restoreReadBuffer gives a stashed (zero) rd a buffer again, reading from
// src; a reader with a buffer is left as it is.
func restoreReadBuffer(rd *bufio.Reader, src io.Reader) {
	if rd.Size() != 0 {
		return
	}
	sh, _ := readBufs.Get().(*bufio.Reader)
	if sh == nil {
		sh = bufio.NewReaderSize(nil, readBufferSize)
	}
	*rd = *sh
	rd.Reset(src)
	*sh = bufio.Reader{}
	readShells.Put(sh)
}

// read reads the connection's first packet on the goroutine it is called
// on, then parks the socket (or, without a poller, hands the loop to a
// fresh goroutine: handling a packet, above all the CONNECT with auth and
// rules, grows a goroutine's stack, and the one that sits idle for the
// connection's life should be small).
func (t *wsTransport) read() {
	if t.readOne() && !t.park() {
		go t.readLoop(true)
	}
}

// readLoop reads until nothing is buffered, then parks the socket with the
// server's poller (which calls it again, wait false, when the socket is
// readable) and ends. Without a poller it is the connection's one idle
// goroutine.
func (t *wsTransport) readLoop(wait bool) {
	if t.rd != nil {
		restoreReadBuffer(t.rd, t.nc) // parked: see stashReadBuffer
	}
	for {
		if wait {
			t.waitReadable()
		}
		if !t.readOne() || t.park() {
			return
		}
		wait = true
	}
}

// readOne reads and handles one message or control frame; false ends the
// reading.
func (t *wsTransport) readOne() bool {
	op, data, err := readMessage(t.rd, t.s.srv.opts.MaxPayload, t.onPing)
	if err != nil {
		if we, ok := err.(*wsError); ok {
			// The peer's close frame is echoed with its code (RFC 6455
			// §5.5.1); a protocol violation or a message over the limit
			// fails the connection with 1002 or 1009, as Node's ws does.
			reason := ReasonTransportError
			if we.peer {
				reason = ReasonTransportClose
			}
			t.s.closeCode(reason, we.code)
			return false
		}
		t.s.close(ReasonTransportClose, true) // the connection failed or ended
		return false
	}
	if op == opPing || op == opPong {
		return true // answered or skipped in readMessage
	}
	return t.s.handleFrame(op, data)
}

// waitReadable blocks, on a shallow stack, until the socket has data (or
// an error) when the read buffer is empty. Without a raw socket it returns
// at once and the read that follows waits.
func (t *wsTransport) waitReadable() {
	if t.raw == nil || t.rd == nil || t.rd.Buffered() > 0 {
		return
	}
	// Errors (a closed socket) surface in the read that follows.
	_ = t.raw.Read(peekReadable)
}

// park hands a socket with nothing buffered to the server's poller; true
// means the caller's goroutine must end (the poller starts a reader when
// the socket is readable).
func (t *wsTransport) park() bool {
	if t.raw == nil || t.rd == nil || t.rd.Buffered() > 0 {
		return false
	}
	p := t.s.srv.pollerFor()
	if p == nil {
		return false
	}
	// Before the socket is in the set: once it is, a reader may start
	// on another goroutine at any moment.
	stashReadBuffer(t.rd)
	if p.park(t) {
		return true
	}
	restoreReadBuffer(t.rd, t.nc)
	return false
}

// unpark takes the socket out of the poller before it closes.
func (t *wsTransport) unpark() {
	if t.reg.token != 0 {
		if p := t.s.srv.pollerFor(); p != nil {
			p.forget(t)
		}
	}
}

// The poller's view of the transport (poller.go).

func (t *wsTransport) pollReg() *pollReg { return &t.reg }

// parkable: a closed session is never left parked. Session.close marks
// the session closed before it calls unpark, and the poller asks under
// its lock.
func (t *wsTransport) parkable() bool {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	return !t.s.closed
}
