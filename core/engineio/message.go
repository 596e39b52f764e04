package engineio

import (
	"sync/atomic"

	"github.com/gorilla/websocket"
	eiop "github.com/socketfleet/socketfleet/core/protocol/engineio"
)

// Message is one outgoing Engine.IO packet, already encoded. A broadcast
// builds one Message and queues the same pointer on every recipient, so the
// bytes are encoded once and the WebSocket frame is framed once
// (PreparedMessage) no matter how many sockets receive it.
type Message struct {
	// Frame is the Engine.IO text encoding (type digit + data) for text
	// packets, or the raw bytes of a binary message.
	Frame  []byte
	Binary bool
	// Shared marks a message queued on many sessions (a broadcast): its
	// WebSocket frame is built once and reused.
	Shared bool

	prepared atomic.Pointer[websocket.PreparedMessage]
}

// NewText returns a text message with the given packet type and data.
func NewText(t eiop.PacketType, data []byte) *Message {
	return &Message{Frame: eiop.AppendText(make([]byte, 0, 1+len(data)), eiop.Packet{Type: t, Data: data})}
}

// NewMessage wraps an already encoded Engine.IO text frame (type digit
// included). The slice must not be modified afterwards.
func NewMessage(frame []byte) *Message { return &Message{Frame: frame} }

// NewBinary returns a binary message; b must not be modified afterwards.
func NewBinary(b []byte) *Message { return &Message{Frame: b, Binary: true} }

// wsPrepared returns the WebSocket frame for m, building it on first use.
func (m *Message) wsPrepared() (*websocket.PreparedMessage, error) {
	if pm := m.prepared.Load(); pm != nil {
		return pm, nil
	}
	kind := websocket.TextMessage
	if m.Binary {
		kind = websocket.BinaryMessage
	}
	pm, err := websocket.NewPreparedMessage(kind, m.Frame)
	if err != nil {
		return nil, err
	}
	if !m.prepared.CompareAndSwap(nil, pm) {
		return m.prepared.Load(), nil
	}
	return pm, nil
}

// Shared control packets; they carry no per-session data.
var (
	msgPing  = &Message{Frame: []byte{'2'}}
	msgNoop  = &Message{Frame: []byte{'6'}}
	msgClose = &Message{Frame: []byte{'1'}}
	msgProbe = &Message{Frame: []byte("3probe")}
)

// packet returns m as a codec packet (for the polling payload encoder).
func (m *Message) packet() eiop.Packet {
	if m.Binary {
		return eiop.Packet{Type: eiop.Message, Data: m.Frame, Binary: true}
	}
	return eiop.Packet{Type: eiop.PacketType(m.Frame[0] - '0'), Data: m.Frame[1:]}
}
