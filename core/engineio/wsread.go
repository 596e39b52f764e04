package engineio

// How a WebSocket session reads. On Linux an idle session holds no
// goroutine: its socket waits in the server's poller (poller_linux.go),
// which starts a reader when it becomes readable. The reader parks the
// session again once its read buffer is empty, after a whole message or
// control frame (wsframe.go). Without a poller the session keeps one
// reader goroutine; it waits for readability before it reads, on a stack
// shallow enough for the collector to shrink it to 2 KiB.

// readBufferSize is the read buffer of a WebSocket connection while it
// reads (readBuf): room for a frame header and a control frame's payload
// (125 bytes), and 288 is an allocation size class. Payloads larger than
// the buffer are read straight into the message, past it. A parked
// connection's buffer is empty, so it goes back to a pool: the connection
// keeps only its readBuf, 16 bytes inside the Session, and the reader that
// the poller starts takes an array again.
const readBufferSize = 288

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
	op, data, err := readMessage(&t.rb, t.nc, t.s.srv.opts.MaxPayload, t.onPing)
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
	if t.raw == nil || t.rb.buffered() > 0 {
		return
	}
	// Errors (a closed socket) surface in the read that follows.
	_ = t.raw.Read(peekReadable)
}

// park hands a socket with nothing buffered to the server's poller; true
// means the caller's goroutine must end (the poller starts a reader when
// the socket is readable).
func (t *wsTransport) park() bool {
	if t.raw == nil || t.rb.buffered() > 0 {
		return false
	}
	p := t.s.srv.pollerFor()
	if p == nil {
		return false
	}
	// Before the socket is in the set: once it is, a reader may start
	// on another goroutine at any moment.
	t.rb.release()
	return p.park(t)
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
