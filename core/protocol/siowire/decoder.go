package siowire

import (
	"bytes"
	"fmt"
)

// Decoder reassembles Socket.IO packets from Engine.IO messages: a text
// message carrying the header and JSON, followed, for binary packets, by one
// binary message per announced attachment. One Decoder serves one Engine.IO
// connection and is not safe for concurrent use. The zero value is not
// usable; use NewDecoder.
//
// Ownership: each returned *Packet is freshly allocated and belongs to the
// caller. Its Data aliases the text message passed to AddText and its
// Attachments alias the messages passed to AddBinary (nothing is copied), so
// the caller must not modify or reuse those buffers while the packet is in
// use, nor while a binary packet is still pending.
type Decoder struct {
	maxAttachments int
	pending        *Packet // binary packet waiting for attachments
	want           int     // attachments announced by pending
	lastNsp        string  // cache to avoid allocating a repeated namespace
}

// NewDecoder returns a Decoder accepting at most maxAttachments attachments
// per packet. maxAttachments == 0 selects DefaultMaxAttachments (10, like
// Node); a negative value forbids attachments (a count of 0 is still valid).
func NewDecoder(maxAttachments int) *Decoder {
	if maxAttachments == 0 {
		maxAttachments = DefaultMaxAttachments
	} else if maxAttachments < 0 {
		maxAttachments = 0
	}
	return &Decoder{maxAttachments: maxAttachments, lastNsp: "/"}
}

// Reset drops any partially received binary packet.
func (d *Decoder) Reset() {
	d.pending = nil
	d.want = 0
}

// Pending reports whether a binary packet is waiting for attachments.
func (d *Decoder) Pending() bool { return d.pending != nil }

// binPacket lets a binary packet with few attachments be allocated together
// with its attachment slice.
type binPacket struct {
	p      Packet
	inline [2][]byte
}

// AddText takes one Engine.IO text message. It returns the packet when it is
// complete, or (nil, nil) when it is a binary packet waiting for attachments.
// A text message arriving while attachments are pending is an error (and
// drops the pending packet). All errors wrap ErrInvalidPacket.
func (d *Decoder) AddText(msg []byte) (*Packet, error) {
	if d.pending != nil {
		want, got := d.want, len(d.pending.Attachments)
		d.Reset()
		return nil, fmt.Errorf("%w: text message while waiting for attachment %d of %d", ErrInvalidPacket, got+1, want)
	}
	var p Packet
	n, err := d.parse(msg, &p)
	if err != nil {
		return nil, err
	}
	if !p.Type.IsBinary() {
		pp := new(Packet)
		*pp = p
		return pp, nil
	}
	var pp *Packet
	if n == 0 {
		pp = new(Packet)
		*pp = p
		return pp, nil
	}
	if n <= len(binPacket{}.inline) {
		bp := &binPacket{p: p}
		pp = &bp.p
		pp.Attachments = bp.inline[:0:n]
	} else {
		pp = new(Packet)
		*pp = p
		pp.Attachments = make([][]byte, 0, n)
	}
	d.pending, d.want = pp, n
	return nil, nil
}

// AddBinary takes one binary Engine.IO message, an attachment of the pending
// binary packet (an error if there is none). It returns the packet once all
// its attachments arrived, else (nil, nil). msg is retained, not copied.
func (d *Decoder) AddBinary(msg []byte) (*Packet, error) {
	p := d.pending
	if p == nil {
		return nil, fmt.Errorf("%w: unexpected binary message", ErrInvalidPacket)
	}
	p.Attachments = append(p.Attachments, msg)
	if len(p.Attachments) < d.want {
		return nil, nil
	}
	d.Reset()
	return p, nil
}

var reservedEvents = [...]string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}

func isReserved(name []byte) bool {
	for _, r := range reservedEvents {
		if string(name) == r {
			return true
		}
	}
	return false
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidPacket}, args...)...)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parse decodes and validates msg into p and returns the attachment count.
func (d *Decoder) parse(msg []byte, p *Packet) (int, error) {
	if len(msg) == 0 {
		return 0, invalid("empty message")
	}
	if msg[0] < '0' || msg[0] > '0'+byte(BinaryAck) {
		return 0, invalid("unknown packet type %q", msg[0])
	}
	p.Type = PacketType(msg[0] - '0')
	i := 1

	// attachment count: binary types only, digits then '-'
	n := 0
	if p.Type.IsBinary() {
		start := i
		for ; i < len(msg) && isDigit(msg[i]); i++ {
			if n = n*10 + int(msg[i]-'0'); n > d.maxAttachments || n > 1<<30 {
				break
			}
		}
		if n > d.maxAttachments || n > 1<<30 {
			return 0, invalid("too many attachments (max %d)", d.maxAttachments)
		}
		if i == start || i >= len(msg) || msg[i] != '-' {
			return 0, invalid("illegal attachments count")
		}
		i++
	}

	// namespace: from '/' up to ',' or the end of the message
	p.Namespace = "/"
	if i < len(msg) && msg[i] == '/' {
		end := len(msg)
		if j := bytes.IndexByte(msg[i:], ','); j >= 0 {
			end = i + j
		}
		nsp := msg[i:end]
		if string(nsp) != d.lastNsp {
			d.lastNsp = string(nsp)
		}
		p.Namespace = d.lastNsp
		i = end + 1
	}

	// ack id: the decimal digits right before the JSON
	if i < len(msg) && isDigit(msg[i]) {
		var id uint64
		for ; i < len(msg) && isDigit(msg[i]); i++ {
			v := uint64(msg[i] - '0')
			if id > (^uint64(0)-v)/10 {
				return 0, invalid("ack id overflows")
			}
			id = id*10 + v
		}
		p.ID, p.HasID = id, true
	}

	if i < len(msg) {
		p.Data = msg[i:]
	}
	return n, d.validateData(p, n)
}

func (d *Decoder) validateData(p *Packet, nAtt int) error {
	if p.Data == nil {
		switch p.Type {
		case Connect, Disconnect:
			return nil
		}
		return invalid("%v without payload", p.Type)
	}
	if p.Type == Disconnect {
		return invalid("DISCONNECT with payload")
	}
	s := scanner{data: p.Data, checkPH: p.Type.IsBinary(), nAtt: nAtt}
	c, err := s.top()
	if err != nil {
		return invalid("%v payload: %w", p.Type, err)
	}
	switch p.Type {
	case Connect:
		if c != '{' {
			return invalid("CONNECT payload must be an object")
		}
	case ConnectError:
		if c != '{' && c != '"' {
			return invalid("CONNECT_ERROR payload must be an object or a string")
		}
	case Ack, BinaryAck:
		if c != '[' {
			return invalid("%v payload must be an array", p.Type)
		}
		if !p.HasID {
			return invalid("%v without ack id", p.Type)
		}
	case Event, BinaryEvent:
		if c != '[' {
			return invalid("%v payload must be an array", p.Type)
		}
		if s.firstS < 0 {
			return invalid("%v payload is an empty array", p.Type)
		}
		return checkEventName(p.Data[s.firstS:s.firstE])
	}
	return nil
}

// checkEventName validates the raw first element of an event array.
func checkEventName(first []byte) error {
	switch c := first[0]; {
	case c == '"':
		if bytes.IndexByte(first, '\\') < 0 {
			if isReserved(first[1 : len(first)-1]) {
				return invalid("reserved event name %s", first)
			}
			return nil
		}
		name, err := unquote(first)
		if err != nil {
			return invalid("bad event name: %v", err)
		}
		if isReserved([]byte(name)) {
			return invalid("reserved event name %q", name)
		}
		return nil
	case c == '-' || isDigit(c):
		return nil
	}
	return invalid("event name must be a string or a number")
}

// EventName returns the name and the raw arguments of an EVENT or
// BINARY_EVENT packet. The first element of Data must be a string that is not
// a reserved event name, or a number (name is then its JSON text). args alias
// p.Data.
func EventName(p *Packet) (name string, args [][]byte, err error) {
	if p.Type != Event && p.Type != BinaryEvent {
		return "", nil, invalid("%v is not an event", p.Type)
	}
	elems, err := SplitArray(p.Data)
	if err != nil {
		return "", nil, invalid("event payload: %w", err)
	}
	if len(elems) == 0 {
		return "", nil, invalid("event payload is an empty array")
	}
	first := elems[0]
	if err := checkEventName(first); err != nil {
		return "", nil, err
	}
	if first[0] == '"' {
		if name, err = unquote(first); err != nil {
			return "", nil, invalid("bad event name: %v", err)
		}
	} else {
		name = string(first)
	}
	return name, elems[1:], nil
}
