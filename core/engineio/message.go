package engineio

import (
	"encoding/binary"

	"github.com/socketfleet/socketfleet/core/protocol/eiowire"
)

// Headroom is the space a frame buffer keeps free in front of its Engine.IO
// frame, for the WebSocket header (at most 10 bytes from server to client).
// With it the WebSocket frame is built in place: no copy, no second buffer.
const Headroom = 10

// Message is one outgoing Engine.IO packet, already encoded. A broadcast
// builds one Message and queues the same pointer on every recipient, so the
// bytes are encoded and framed once no matter how many sockets receive it.
// A Message is immutable once built.
type Message struct {
	// Frame is the Engine.IO text encoding (type digit + data) for text
	// packets, or the raw bytes of a binary message.
	Frame  []byte
	Binary bool

	ws []byte // the whole WebSocket frame: header + Frame, sharing Frame's bytes
}

// NewFramed wraps buf, whose first Headroom bytes are free and whose rest is
// the message (an Engine.IO text frame, type digit included, or binary
// bytes). It does not copy; buf must not be modified afterwards.
func NewFramed(buf []byte, binary bool) *Message {
	op := byte(opText)
	if binary {
		op = opBinary
	}
	return &Message{Frame: buf[Headroom:], Binary: binary, ws: frameInPlace(buf, op)}
}

// NewText returns a text message with the given packet type and data.
func NewText(t eiowire.PacketType, data []byte) *Message {
	buf := make([]byte, Headroom, Headroom+1+len(data))
	return NewFramed(eiowire.AppendText(buf, eiowire.Packet{Type: t, Data: data}), false)
}

// NewMessage copies an already encoded Engine.IO text frame (type digit
// included). Encoders that can leave Headroom use NewFramed instead.
func NewMessage(frame []byte) *Message {
	return NewFramed(append(make([]byte, Headroom, Headroom+len(frame)), frame...), false)
}

// NewBinary copies b into a binary message.
func NewBinary(b []byte) *Message {
	return NewFramed(append(make([]byte, Headroom, Headroom+len(b)), b...), true)
}

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opText   = 0x1
	opBinary = 0x2
	opPong   = 0xA
)

// frameInPlace writes a final, unmasked WebSocket header for buf[Headroom:]
// just in front of it and returns header and payload as one slice.
func frameInPlace(buf []byte, op byte) []byte {
	n := len(buf) - Headroom
	var h int
	switch {
	case n < 126:
		h = 2
		buf[Headroom-1] = byte(n)
	case n <= 0xFFFF:
		h = 4
		buf[Headroom-3] = 126
		binary.BigEndian.PutUint16(buf[Headroom-2:], uint16(n))
	default:
		h = 10
		buf[Headroom-9] = 127
		binary.BigEndian.PutUint64(buf[Headroom-8:], uint64(n))
	}
	buf[Headroom-h] = 0x80 | op // FIN
	return buf[Headroom-h:]
}

// newPong answers a client's WebSocket ping through the session's own
// writer, so that no other goroutine writes to the connection.
func newPong(data []byte) *Message {
	buf := append(make([]byte, Headroom, Headroom+len(data)), data...)
	return &Message{ws: frameInPlace(buf, opPong)}
}

// Shared control packets; they carry no per-session data.
var (
	msgPing  = NewText(eiowire.Ping, nil)
	msgNoop  = NewText(eiowire.Noop, nil)
	msgClose = NewText(eiowire.Close, nil)
	msgProbe = NewText(eiowire.Pong, []byte("probe"))
)

// packet returns m as a codec packet (for the polling payload encoder).
func (m *Message) packet() eiowire.Packet {
	if m.Binary {
		return eiowire.Packet{Type: eiowire.Message, Data: m.Frame, Binary: true}
	}
	return eiowire.Packet{Type: eiowire.PacketType(m.Frame[0] - '0'), Data: m.Frame[1:]}
}
