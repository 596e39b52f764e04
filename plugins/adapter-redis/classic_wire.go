package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/socketfleet/socketfleet/sdk"
)

// The classic mode's broadcasts, as @socket.io/redis-adapter (notepack)
// publishes them: [uid, {type:2, data:[event, ...args], nsp}, {rooms,
// except, flags}], with binary arguments as msgpack bin where the JSON form
// has placeholders.

// encodeMessage renders m as the Node adapter's broadcast message.
func encodeMessage(uid string, m *sdk.AdapterMessage) ([]byte, error) {
	data, err := parseJSON(m.Data)
	if err != nil {
		return nil, fmt.Errorf("message data: %w", err)
	}
	if _, ok := data.([]any); !ok {
		return nil, errors.New("message data is not a JSON array")
	}
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	w := &writer{e: e, attachments: m.Attachments}
	w.arrayLen(3)
	w.str(uid)
	w.packet(data, nspOrRoot(m.Namespace))
	w.opts(&broadcastOpts{rooms: m.Rooms, except: m.Except, volatile: m.Volatile})
	if w.err != nil {
		return nil, w.err
	}
	return buf.Bytes(), nil
}

// decoded is a broadcast received from Redis.
type decoded struct {
	uid string
	typ int64
	msg sdk.AdapterMessage
}

// errOwnMessage is decodeMessageFrom's answer for a message of our own.
var errOwnMessage = errors.New("own message")

// decodeMessage parses a Node adapter broadcast message.
func decodeMessage(b []byte) (*decoded, error) { return decodeMessageFrom(b, "") }

// decodeMessageFrom is decodeMessage that stops at the uid when it is own
// (not ""), with errOwnMessage: every broadcast we publish comes back
// through the pattern subscription, and is dropped unread.
func decodeMessageFrom(b []byte, own string) (*decoded, error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	n, err := d.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	if n < 2 {
		return nil, fmt.Errorf("message is an array of %d", n)
	}
	out := &decoded{typ: -1}
	if out.uid, err = decodeStringish(d); err != nil {
		return nil, fmt.Errorf("uid: %w", err)
	}
	if own != "" && out.uid == own {
		return nil, errOwnMessage
	}
	out.msg.Namespace = "/"
	if err := decodeMap(d, func(k string) error {
		switch k {
		case "type":
			t, err := d.DecodeInt64()
			out.typ = t
			return err
		case "nsp":
			s, err := decodeStringish(d)
			if s != "" {
				out.msg.Namespace = s
			}
			return err
		case "data":
			r := &reader{d: d}
			var buf []byte
			buf, err := r.value(buf)
			out.msg.Data, out.msg.Attachments = buf, r.attachments
			return err
		}
		return d.Skip()
	}); err != nil {
		return nil, fmt.Errorf("packet: %w", err)
	}
	if n >= 3 {
		var o broadcastOpts
		if err := decodeOpts(d, &o); err != nil {
			return nil, fmt.Errorf("opts: %w", err)
		}
		out.msg.Rooms, out.msg.Except, out.msg.Volatile = o.rooms, o.except, o.volatile
	}
	if out.msg.Data == nil {
		return nil, errors.New("packet without data")
	}
	return out, nil
}

// checkMessage is the cheap part of encodeMessage's checks, for Publish to
// refuse a message at once rather than after it waited in the queue: valid
// JSON, an array, and placeholders within the attachments (parsed only when
// the data has placeholders at all).
func checkMessage(m *sdk.AdapterMessage) error {
	if !json.Valid(m.Data) {
		return errors.New("message data is not valid JSON")
	}
	if !isJSONArray(m.Data) {
		return errors.New("message data is not a JSON array")
	}
	if !bytes.Contains(m.Data, []byte(`"_placeholder"`)) {
		return nil
	}
	v, err := parseJSON(m.Data)
	if err != nil {
		return fmt.Errorf("message data: %w", err)
	}
	return checkPlaceholders(v, len(m.Attachments))
}
