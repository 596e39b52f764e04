// Package siowire implements the Socket.IO v5 wire codec (the socket.io-parser
// format carried inside Engine.IO message packets), plus helpers to handle the
// raw JSON payloads byte-exactly.
//
// Payloads are never round-tripped through maps: Packet.Data holds the JSON
// exactly as received, validated in a single allocation-free pass.
package siowire

import (
	"errors"
	"strconv"
)

// PacketType is the Socket.IO packet type (the leading digit on the wire).
type PacketType byte

// Socket.IO v5 packet types.
const (
	Connect PacketType = iota
	Disconnect
	Event
	Ack
	ConnectError
	BinaryEvent
	BinaryAck
)

var typeNames = [...]string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"}

// String returns the protocol name of t ("EVENT", "BINARY_ACK", ...).
func (t PacketType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "PacketType(" + strconv.Itoa(int(t)) + ")"
}

// Valid reports whether t is a known Socket.IO v5 packet type.
func (t PacketType) Valid() bool { return t <= BinaryAck }

// IsBinary reports whether t is BinaryEvent or BinaryAck.
func (t PacketType) IsBinary() bool { return t == BinaryEvent || t == BinaryAck }

// ErrInvalidPacket is wrapped by every decoding error. Upstream, such an
// error closes the Engine.IO connection.
var ErrInvalidPacket = errors.New("socketio: invalid packet")

// DefaultMaxAttachments is the Node parser's default attachment cap.
const DefaultMaxAttachments = 10

// Packet is one Socket.IO packet.
type Packet struct {
	Type      PacketType
	Namespace string // "/" when omitted on the wire
	ID        uint64 // ack id, valid when HasID
	HasID     bool
	// Data is the raw JSON payload exactly as received (nil when absent).
	// For binary packets it still contains the {"_placeholder":true,"num":N}
	// objects.
	Data []byte
	// Attachments are the binary attachments in order; for binary packets
	// len(Attachments) is the count announced in the header.
	Attachments [][]byte
}

// AppendHeader appends a packet header: the type digit, then for binary
// types the attachment count and '-', then the namespace and ',' when nsp is
// neither "/" nor "", then the ack id when hasID. attachments is ignored for
// non-binary types. t must be a valid type and nsp must not contain ','
// (it could not be decoded).
func AppendHeader(dst []byte, t PacketType, nsp string, attachments int, id uint64, hasID bool) []byte {
	dst = append(dst, '0'+byte(t))
	if t.IsBinary() {
		dst = strconv.AppendInt(dst, int64(attachments), 10)
		dst = append(dst, '-')
	}
	if nsp != "" && nsp != "/" {
		dst = append(dst, nsp...)
		dst = append(dst, ',')
	}
	if hasID {
		dst = strconv.AppendUint(dst, id, 10)
	}
	return dst
}

// AppendEncoded appends the text message for p: the header (with
// len(p.Attachments) as the count) followed by Data. The attachments
// themselves are sent separately by the caller, as binary messages, in order.
func (p *Packet) AppendEncoded(dst []byte) []byte {
	dst = AppendHeader(dst, p.Type, p.Namespace, len(p.Attachments), p.ID, p.HasID)
	return append(dst, p.Data...)
}
