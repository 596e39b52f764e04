package engineio

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"unicode/utf8"
)

// The server side of WebSocket framing on the read path (RFC 6455 §5).
// The write path needs none: every Message carries its whole frame
// (message.go). Reading is ours rather than a library's so that a
// connection keeps nothing for it but a readBuf, inside its Session: no
// per-connection reader object, no per-message reader, and each message
// read straight into one buffer of its exact size.

// WebSocket opcodes not in message.go.
const (
	opContinuation = 0x0
	opClose        = 0x8
	opPing         = 0x9
)

// WebSocket close codes (RFC 6455 §7.4.1).
const (
	closeNormal         = 1000
	closeProtocolError  = 1002
	closeNoStatus       = 1005 // none in the peer's close frame; never sent
	closeInvalidPayload = 1007
	closeTooBig         = 1009
)

// maxControlPayload bounds a control frame's payload (RFC 6455 §5.5).
const maxControlPayload = 125

// wsError ends the reading of a WebSocket: the connection fails with code
// (sent in a close frame), or, peer set, the peer closed it and code is
// the close frame's echo.
type wsError struct {
	code int
	peer bool
	msg  string
}

func (e *wsError) Error() string { return "websocket: " + e.msg }

// The protocol failures, allocated once.
var (
	errReservedBits   = &wsError{code: closeProtocolError, msg: "reserved bits set"}
	errUnmasked       = &wsError{code: closeProtocolError, msg: "client frame not masked"}
	errBadOpcode      = &wsError{code: closeProtocolError, msg: "unknown opcode"}
	errBadControl     = &wsError{code: closeProtocolError, msg: "fragmented or oversized control frame"}
	errBadContinue    = &wsError{code: closeProtocolError, msg: "continuation without a message"}
	errUnfinished     = &wsError{code: closeProtocolError, msg: "data frame inside a fragmented message"}
	errBadLength      = &wsError{code: closeProtocolError, msg: "payload length with the top bit set"}
	errBadClose       = &wsError{code: closeProtocolError, msg: "invalid close frame"}
	errTooBig         = &wsError{code: closeTooBig, msg: "message exceeds the read limit"}
	errPeerCloseEmpty = &wsError{code: closeNormal, peer: true, msg: "closed by the peer"}
)

// readBuf is a WebSocket's read buffer: buf[r:w] came from the connection
// and is not consumed yet. Held by value in the transport; the array only
// while reading: an idle (parked) connection gives it back to readArrays
// (wsread.go). Frame headers and control frames are read in it; payloads
// go to their message, straight from the connection when they are large.
type readBuf struct {
	buf  *[readBufferSize]byte
	r, w uint16
}

// readArrays holds the read buffers of parked connections.
var readArrays sync.Pool

// take gives b an array if it has none.
func (b *readBuf) take() {
	if b.buf == nil {
		b.buf, _ = readArrays.Get().(*[readBufferSize]byte)
		if b.buf == nil {
			b.buf = new([readBufferSize]byte)
		}
	}
}

// release hands an empty b's array back to readArrays.
func (b *readBuf) release() {
	if b.buf != nil && b.r == b.w {
		readArrays.Put(b.buf)
		b.buf, b.r, b.w = nil, 0, 0
	}
}

func (b *readBuf) buffered() int { return int(b.w - b.r) }

// errNoProgress: the connection's Read returned nothing, and no error,
// too many times in a row.
var errNoProgress = errors.New("websocket: no progress reading the connection")

// fill reads from src until n bytes (at most readBufferSize) are buffered.
func (b *readBuf) fill(src io.Reader, n int) error {
	if int(b.r)+n > readBufferSize {
		copy(b.buf[:], b.buf[b.r:b.w])
		b.r, b.w = 0, b.w-b.r
	}
	for empty := 0; b.buffered() < n; {
		m, err := src.Read(b.buf[b.w:])
		b.w += uint16(m)
		if b.buffered() >= n {
			return nil
		}
		if err != nil {
			if err == io.EOF && b.buffered() > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if m == 0 {
			if empty++; empty == 100 {
				return errNoProgress
			}
		}
	}
	return nil
}

// peek returns the next n bytes (n at most readBufferSize), valid until
// the next call; they may be changed in place.
func (b *readBuf) peek(src io.Reader, n int) ([]byte, error) {
	if err := b.fill(src, n); err != nil {
		return nil, err
	}
	return b.buf[b.r : int(b.r)+n], nil
}

// discard consumes n buffered bytes.
func (b *readBuf) discard(n int) {
	b.r += uint16(n)
	if b.r == b.w {
		b.r, b.w = 0, 0
	}
}

// readFull fills p: what is buffered first, then a rest as large as the
// buffer straight from src, a smaller one through the buffer (a read
// that may bring the next frames along).
func (b *readBuf) readFull(src io.Reader, p []byte) error {
	n := copy(p, b.buf[b.r:b.w])
	b.discard(n)
	p = p[n:]
	switch {
	case len(p) == 0:
		return nil
	case len(p) >= readBufferSize:
		_, err := io.ReadFull(src, p)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // part of the payload came
		}
		return err
	}
	if err := b.fill(src, len(p)); err != nil {
		return err
	}
	b.discard(copy(p, b.buf[b.r:b.w]))
	return nil
}

// frameHeader is a parsed frame header.
type frameHeader struct {
	fin bool
	op  byte
	n   int64  // payload length
	key uint32 // masking key, little-endian (as maskBytes applies it)
}

// readHeader reads one client frame's header and checks what can be
// checked from it alone.
func readHeader(rb *readBuf, src io.Reader) (frameHeader, error) {
	var h frameHeader
	b, err := rb.peek(src, 2)
	if err != nil {
		return h, err
	}
	b0, b1 := b[0], b[1]
	size := 6 // 2 + the masking key
	switch b1 & 0x7F {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if b0&0x70 != 0 {
		return h, errReservedBits // no extension is ever negotiated
	}
	if b1&0x80 == 0 {
		return h, errUnmasked
	}
	if b, err = rb.peek(src, size); err != nil {
		return h, err
	}
	h.fin = b0&0x80 != 0
	h.op = b0 & 0x0F
	switch n := b1 & 0x7F; n {
	case 126:
		h.n = int64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		u := binary.BigEndian.Uint64(b[2:])
		if u>>63 != 0 {
			return h, errBadLength
		}
		h.n = int64(u)
	default:
		h.n = int64(n)
	}
	h.key = binary.LittleEndian.Uint32(b[size-4:])
	rb.discard(size)
	return h, nil
}

// readMessage reads frames from src, through rb, until a message is
// whole, and returns
// its opcode (opText or opBinary) and payload, at most limit bytes, in
// one buffer of its own. Control frames are handled on the way: a ping's
// payload goes to onPing (which must not keep it), a pong is skipped; one
// that arrives outside a message is returned alone (opPing or opPong, no
// data), so that the caller may park the connection. A close frame or a
// protocol violation returns a *wsError; the connection's errors return
// as they are.
func readMessage(rb *readBuf, src io.Reader, limit int64, onPing func([]byte)) (byte, []byte, error) {
	rb.take()
	var (
		op  byte // the open message's opcode; 0: none open
		msg []byte
	)
	for {
		h, err := readHeader(rb, src)
		if err != nil {
			return 0, nil, err
		}
		switch h.op {
		case opClose, opPing, opPong:
			if !h.fin || h.n > maxControlPayload {
				return 0, nil, errBadControl
			}
			// At most 125 bytes: read them in rb, no copy.
			p, err := rb.peek(src, int(h.n))
			if err != nil {
				return 0, nil, err
			}
			maskBytes(h.key, p)
			switch h.op {
			case opClose:
				return 0, nil, peerClose(p)
			case opPing:
				onPing(p)
			}
			rb.discard(len(p))
			if op == 0 {
				return h.op, nil, nil
			}
			continue
		case opText, opBinary:
			if op != 0 {
				return 0, nil, errUnfinished
			}
			op = h.op
		case opContinuation:
			if op == 0 {
				return 0, nil, errBadContinue
			}
		default:
			return 0, nil, errBadOpcode
		}
		// The limit holds for the whole message, checked before its
		// bytes are read or room is made for them.
		if h.n > limit-int64(len(msg)) {
			return 0, nil, errTooBig
		}
		var p []byte
		if msg == nil && h.fin {
			msg = make([]byte, h.n) // the common case: one frame, an exact buffer
			p = msg
		} else {
			if msg == nil {
				msg = []byte{} // a message is open, even while empty
			}
			start := len(msg)
			msg = append(msg, make([]byte, h.n)...)
			p = msg[start:]
		}
		if err := rb.readFull(src, p); err != nil {
			return 0, nil, err
		}
		maskBytes(h.key, p)
		if h.fin {
			return op, msg, nil
		}
	}
}

// peerClose checks a close frame's payload and returns the error that
// ends the reading, with the code to echo.
func peerClose(p []byte) error {
	if len(p) == 0 {
		return errPeerCloseEmpty
	}
	if len(p) == 1 {
		return errBadClose
	}
	code := int(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) || !utf8.Valid(p[2:]) {
		return errBadClose
	}
	return &wsError{code: code, peer: true, msg: "closed by the peer"}
}

// validCloseCode reports whether code may appear in a close frame: the
// registered codes that are not reserved for local use (RFC 6455 §7.4),
// and those for libraries and applications (3000–4999).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// maskBytes applies a frame's masking key (little-endian, from the frame's
// first payload byte on) to b in place, eight bytes at a time.
func maskBytes(key uint32, b []byte) {
	k := uint64(key) | uint64(key)<<32
	for len(b) >= 32 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
		binary.LittleEndian.PutUint64(b[8:], binary.LittleEndian.Uint64(b[8:])^k)
		binary.LittleEndian.PutUint64(b[16:], binary.LittleEndian.Uint64(b[16:])^k)
		binary.LittleEndian.PutUint64(b[24:], binary.LittleEndian.Uint64(b[24:])^k)
		b = b[32:]
	}
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
		b = b[8:]
	}
	// Whole multiples of 4 are behind, so the key starts over here.
	for i := range b {
		b[i] ^= byte(k >> (8 * (i & 3)))
	}
}

// closeFrame is a server close frame carrying code.
func closeFrame(code int) []byte {
	return []byte{0x80 | opClose, 2, byte(code >> 8), byte(code)}
}
