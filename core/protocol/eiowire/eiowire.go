// Package eiowire implements the Engine.IO v4 wire codec: single packets as
// carried by WebSocket text frames, and the record-separated payloads used by
// HTTP long-polling.
//
// The decoders do not allocate for text packets: the Data of a decoded text
// packet aliases the input. Only base64-encoded binary packets ('b' prefix)
// get a freshly allocated Data.
package eiowire

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

// PacketType is the Engine.IO packet type (the leading digit on the wire).
type PacketType byte

// Engine.IO v4 packet types.
const (
	Open PacketType = iota
	Close
	Ping
	Pong
	Message
	Upgrade
	Noop
)

var typeNames = [...]string{"open", "close", "ping", "pong", "message", "upgrade", "noop"}

// String returns the lower-case protocol name of t ("open", "message", ...).
func (t PacketType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "PacketType(" + strconv.Itoa(int(t)) + ")"
}

// Valid reports whether t is a known Engine.IO v4 packet type.
func (t PacketType) Valid() bool { return t <= Noop }

// Packet is one Engine.IO packet.
type Packet struct {
	Type PacketType
	// Data is the payload after the type digit (text packets) or the raw
	// bytes of a binary message.
	Data []byte
	// Binary is true only for binary messages (Type == Message).
	Binary bool
}

// Separator is the record separator between packets in a polling payload.
const Separator = 0x1e

// Sentinel errors. Decoding errors wrap one of them with detail.
var (
	ErrInvalidPacket  = errors.New("engineio: invalid packet")
	ErrInvalidPayload = errors.New("engineio: invalid payload")
)

// DecodeText decodes one WebSocket text frame: a type digit followed by data.
// The returned Data aliases frame.
//
// For parity with the Node parser, a frame of the form 'b' + base64 is also
// accepted and decoded as a binary message (Data is then freshly allocated);
// v4 clients send binary as binary frames, so this path is rare.
func DecodeText(frame []byte) (Packet, error) {
	if len(frame) == 0 {
		return Packet{}, fmt.Errorf("%w: empty packet", ErrInvalidPacket)
	}
	c := frame[0]
	if c >= '0' && c <= '0'+byte(Noop) {
		return Packet{Type: PacketType(c - '0'), Data: frame[1:]}, nil
	}
	if c == 'b' {
		data, err := decodeBase64(frame[1:])
		if err != nil {
			return Packet{}, err
		}
		return Packet{Type: Message, Data: data, Binary: true}, nil
	}
	return Packet{}, fmt.Errorf("%w: unknown packet type %q", ErrInvalidPacket, c)
}

func decodeBase64(src []byte) ([]byte, error) {
	enc := base64.StdEncoding
	if len(src)%4 != 0 {
		// Node's Buffer.from(s, "base64") tolerates missing padding.
		enc = base64.RawStdEncoding
	}
	dst := make([]byte, enc.DecodedLen(len(src)))
	n, err := enc.Decode(dst, src)
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64 in binary packet: %v", ErrInvalidPacket, err)
	}
	return dst[:n], nil
}

// DecodePayload splits an HTTP long-polling body into packets (separated by
// 0x1e; a binary packet is 'b' + standard base64) and calls fn for each packet
// in order. It stops at the first error, either a decoding error (wrapping
// ErrInvalidPayload and ErrInvalidPacket) or one returned by fn (returned
// as is). Packets before the bad one have already been delivered to fn.
//
// Text Data aliases body; binary Data is freshly decoded. An empty body or an
// empty packet is an error.
func DecodePayload(body []byte, fn func(Packet) error) error {
	if len(body) == 0 {
		return fmt.Errorf("%w: empty body", ErrInvalidPayload)
	}
	for idx := 0; ; idx++ {
		end := bytes.IndexByte(body, Separator)
		rec := body
		if end >= 0 {
			rec = body[:end]
		}
		p, err := DecodeText(rec)
		if err != nil {
			return fmt.Errorf("%w: packet %d: %w", ErrInvalidPayload, idx, err)
		}
		if err := fn(p); err != nil {
			return err
		}
		if end < 0 {
			return nil
		}
		body = body[end+1:]
	}
}

// AppendText appends the text encoding of p (type digit + data), as sent in
// a WebSocket text frame. A packet with Binary set is appended as 'b' +
// base64 (the Node fallback for transports without binary support); send
// binary messages as binary frames (raw Data) instead.
func AppendText(dst []byte, p Packet) []byte {
	if p.Binary {
		dst = append(dst, 'b')
		return base64.StdEncoding.AppendEncode(dst, p.Data)
	}
	dst = append(dst, '0'+byte(p.Type))
	return append(dst, p.Data...)
}

// AppendPayload appends p to a polling payload being built in dst: it writes
// the 0x1e separator first when len(dst) > 0, then the type digit and data,
// or 'b' + base64 for a binary packet. Text Data must not contain 0x1e (the
// format has no escaping; the same holds for the Node implementation).
func AppendPayload(dst []byte, p Packet) []byte {
	if len(dst) > 0 {
		dst = append(dst, Separator)
	}
	return AppendText(dst, p)
}
