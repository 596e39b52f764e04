package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// The values of both wire formats (Node's notepack msgpack, and JSON):
// JSON parsed into trees and written as msgpack, msgpack read back as JSON,
// binary as msgpack bin where the JSON form has placeholders.

// packetEvent is socket.io's EVENT packet type.
const packetEvent = 2

func nspOrRoot(nsp string) string {
	if nsp == "" {
		return "/"
	}
	return nsp
}

// object is a JSON object with its key order.
type object struct {
	keys []string
	vals []any
}

// placeholder is {"_placeholder":true,"num":N}.
type placeholder int

// Outgoing messages are trees of *object (ordered keys), []any, string,
// int64, bool, []string, rawJSON, eventPacket and *broadcastOpts, besides
// parseJSON's values; writer.value renders one as msgpack, appendJSON as
// JSON (the sharded mode's messages without binary).

// rawJSON is a JSON value (placeholders included) inside a tree: copied
// into JSON, parsed into msgpack.
type rawJSON []byte

// eventPacket is a broadcast's socket.io packet {type:2, data, nsp}; nsp
// is left out when "" (ClusterAdapter's packets carry none).
type eventPacket struct {
	data any
	nsp  string
}

// broadcastOpts is a broadcast's {rooms, except, flags}: flags are
// {timeout: ms} for a broadcast with acks (ack), else {volatile: true} or
// {}. Decoded, timeout > 0 is what says ack.
type broadcastOpts struct {
	rooms, except []string
	volatile, ack bool
	timeout       time.Duration
}

// parseJSON decodes b into nil, bool, string, json.Number, []any, *object
// and placeholder values.
func parseJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	v, err := parseValue(d)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

func parseValue(d *json.Decoder) (any, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '[':
			arr := []any{}
			for d.More() {
				v, err := parseValue(d)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := d.Token(); err != nil {
				return nil, err
			}
			return arr, nil
		case '{':
			o := &object{}
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := parseValue(d)
				if err != nil {
					return nil, err
				}
				o.keys = append(o.keys, k)
				o.vals = append(o.vals, v)
			}
			if _, err := d.Token(); err != nil {
				return nil, err
			}
			if n, ok := asPlaceholder(o); ok {
				return n, nil
			}
			return o, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return tok, nil
	}
}

func asPlaceholder(o *object) (placeholder, bool) {
	if len(o.keys) != 2 {
		return 0, false
	}
	var isPh, hasNum bool
	var num int64
	for i, k := range o.keys {
		switch k {
		case "_placeholder":
			isPh = o.vals[i] == true
		case "num":
			n, ok := o.vals[i].(json.Number)
			if ok {
				v, err := n.Int64()
				num, hasNum = v, err == nil && v >= 0
			}
		}
	}
	return placeholder(num), isPh && hasNum
}

type writer struct {
	e           *msgpack.Encoder
	attachments [][]byte
	err         error
}

func (w *writer) err1(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *writer) arrayLen(n int) { w.err1(w.e.EncodeArrayLen(n)) }
func (w *writer) mapLen(n int)   { w.err1(w.e.EncodeMapLen(n)) }
func (w *writer) str(s string)   { w.err1(w.e.EncodeString(s)) }

func (w *writer) strings(ss []string) {
	w.arrayLen(len(ss))
	for _, s := range ss {
		w.str(s)
	}
}

func (w *writer) value(v any) {
	switch t := v.(type) {
	case nil:
		w.err1(w.e.EncodeNil())
	case bool:
		w.err1(w.e.EncodeBool(t))
	case string:
		w.str(t)
	case json.Number:
		w.number(t)
	case []any:
		w.arrayLen(len(t))
		for _, x := range t {
			w.value(x)
		}
	case *object:
		w.mapLen(len(t.keys))
		for i, k := range t.keys {
			w.str(k)
			w.value(t.vals[i])
		}
	case int64:
		w.err1(w.e.EncodeInt(t))
	case []string:
		w.strings(t)
	case rawJSON:
		parsed, err := parseJSON(t)
		if err != nil {
			w.err1(err)
			return
		}
		w.value(parsed)
	case eventPacket:
		w.packet(t.data, t.nsp)
	case *broadcastOpts:
		w.opts(t)
	case placeholder:
		if int(t) >= len(w.attachments) {
			w.err1(fmt.Errorf("placeholder %d but %d attachments", t, len(w.attachments)))
			return
		}
		b := w.attachments[t]
		if b == nil {
			b = []byte{}
		}
		w.err1(w.e.EncodeBytes(b))
	default:
		w.err1(fmt.Errorf("unexpected JSON value %T", v))
	}
}

func (w *writer) packet(data any, nsp string) {
	if nsp == "" {
		w.mapLen(2)
	} else {
		w.mapLen(3)
	}
	w.str("type")
	w.err1(w.e.EncodeInt(packetEvent))
	w.str("data")
	w.value(data)
	if nsp != "" {
		w.str("nsp")
		w.str(nsp)
	}
}

func (w *writer) opts(o *broadcastOpts) {
	w.mapLen(3)
	w.str("rooms")
	w.strings(o.rooms)
	w.str("except")
	w.strings(o.except)
	w.str("flags")
	switch {
	case o.ack:
		w.mapLen(1)
		w.str("timeout")
		w.err1(w.e.EncodeInt(o.timeout.Milliseconds()))
	case o.volatile:
		w.mapLen(1)
		w.str("volatile")
		w.err1(w.e.EncodeBool(true))
	default:
		w.mapLen(0)
	}
}

// maxSafe is 2^53: JavaScript integers beyond it are not exact.
const maxSafe = 1 << 53

// number encodes like notepack: integral values as the smallest msgpack
// int, anything else as float64.
func (w *writer) number(n json.Number) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil && i > -maxSafe && i < maxSafe {
		w.err1(w.e.EncodeInt(i))
		return
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		w.err1(fmt.Errorf("bad number %s", n))
		return
	}
	if f == math.Trunc(f) && math.Abs(f) < maxSafe {
		w.err1(w.e.EncodeInt(int64(f)))
		return
	}
	w.err1(w.e.EncodeFloat64(f))
}

// decodeOpts reads a broadcast's opts {rooms, except, flags}.
func decodeOpts(d *msgpack.Decoder, o *broadcastOpts) error {
	return decodeMap(d, func(k string) error {
		switch k {
		case "rooms":
			v, err := decodeStrings(d)
			o.rooms = v
			return err
		case "except":
			v, err := decodeStrings(d)
			o.except = v
			return err
		case "flags":
			return decodeMap(d, func(k string) error {
				switch k {
				case "volatile":
					v, err := d.DecodeInterface()
					o.volatile = v == true
					return err
				case "timeout":
					v, err := d.DecodeInterface()
					if ms := msgpackNumber(v); ms > 0 {
						o.timeout = time.Duration(ms * float64(time.Millisecond))
					}
					return err
				}
				return d.Skip()
			})
		}
		return d.Skip()
	})
}

// msgpackNumber is a number DecodeInterface returned, as float64 (0 for
// anything else).
func msgpackNumber(v any) float64 {
	switch n := v.(type) {
	case int8:
		return float64(n)
	case int16:
		return float64(n)
	case int32:
		return float64(n)
	case int64:
		return float64(n)
	case uint8:
		return float64(n)
	case uint16:
		return float64(n)
	case uint32:
		return float64(n)
	case uint64:
		return float64(n)
	case float32:
		return float64(n)
	case float64:
		return n
	}
	return 0
}

// decodeMap calls field for each key of a map (nil is an empty map); field
// must consume the value.
func decodeMap(d *msgpack.Decoder, field func(k string) error) error {
	n, err := d.DecodeMapLen()
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		k, err := decodeStringish(d)
		if err != nil {
			return err
		}
		if err := field(k); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// decodeStringish reads a string, or a number/bool/nil as JavaScript would
// print it (room names and map keys are strings in Node).
func decodeStringish(d *msgpack.Decoder) (string, error) {
	c, err := d.PeekCode()
	if err != nil {
		return "", err
	}
	if msgpcode.IsString(c) || msgpcode.IsBin(c) {
		return d.DecodeString()
	}
	v, err := d.DecodeInterface()
	if err != nil {
		return "", err
	}
	if v == nil {
		return "", nil
	}
	return fmt.Sprint(v), nil
}

func decodeStrings(d *msgpack.Decoder) ([]string, error) {
	n, err := d.DecodeArrayLen()
	if err != nil || n <= 0 {
		return nil, err
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		s, err := decodeStringish(d)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// reader turns msgpack values into JSON, bin values into placeholders.
type reader struct {
	d           *msgpack.Decoder
	attachments [][]byte
	depth       int
}

func (r *reader) value(buf []byte) ([]byte, error) {
	d := r.d
	c, err := d.PeekCode()
	if err != nil {
		return buf, err
	}
	switch {
	case c == msgpcode.Nil:
		_ = d.DecodeNil()
		return append(buf, "null"...), nil
	case c == msgpcode.True || c == msgpcode.False:
		v, err := d.DecodeBool()
		return strconv.AppendBool(buf, v), err
	case msgpcode.IsFixedNum(c) || c == msgpcode.Int8 || c == msgpcode.Int16 || c == msgpcode.Int32 || c == msgpcode.Int64:
		v, err := d.DecodeInt64()
		return strconv.AppendInt(buf, v, 10), err
	case c == msgpcode.Uint8 || c == msgpcode.Uint16 || c == msgpcode.Uint32 || c == msgpcode.Uint64:
		v, err := d.DecodeUint64()
		return strconv.AppendUint(buf, v, 10), err
	case c == msgpcode.Float || c == msgpcode.Double:
		v, err := d.DecodeFloat64()
		return appendFloat(buf, v), err
	case msgpcode.IsString(c):
		s, err := d.DecodeString()
		return appendJSONString(buf, s), err
	case msgpcode.IsBin(c):
		b, err := d.DecodeBytes()
		if err != nil {
			return buf, err
		}
		return r.attach(buf, b), nil
	case msgpcode.IsExt(c):
		return r.ext(buf)
	}
	r.depth++
	defer func() { r.depth-- }()
	if r.depth > 1000 {
		return buf, errors.New("nested too deeply")
	}
	if msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32 {
		n, err := d.DecodeArrayLen()
		if err != nil {
			return buf, err
		}
		buf = append(buf, '[')
		for i := 0; i < n; i++ {
			if i > 0 {
				buf = append(buf, ',')
			}
			if buf, err = r.value(buf); err != nil {
				return buf, err
			}
		}
		return append(buf, ']'), nil
	}
	if msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32 {
		first := true
		buf = append(buf, '{')
		err := decodeMap(d, func(k string) error {
			if !first {
				buf = append(buf, ',')
			}
			first = false
			buf = appendJSONString(buf, k)
			buf = append(buf, ':')
			var err error
			buf, err = r.value(buf)
			return err
		})
		return append(buf, '}'), err
	}
	return buf, fmt.Errorf("unexpected msgpack code 0x%02x", c)
}

func (r *reader) attach(buf, b []byte) []byte {
	if b == nil {
		b = []byte{}
	}
	buf = append(buf, `{"_placeholder":true,"num":`...)
	buf = strconv.AppendInt(buf, int64(len(r.attachments)), 10)
	r.attachments = append(r.attachments, b)
	return append(buf, '}')
}

// ext handles notepack's extensions: timestamp (-1) as a Date, and the
// legacy type 0 (fixext1 = undefined, fixext8 = Date in ms, others =
// ArrayBuffer). Dates become their JSON form, an ISO string.
func (r *reader) ext(buf []byte) ([]byte, error) {
	c, _ := r.d.PeekCode()
	id, n, err := r.d.DecodeExtHeader()
	if err != nil {
		return buf, err
	}
	b := make([]byte, n)
	if err := r.d.ReadFull(b); err != nil {
		return buf, err
	}
	switch {
	case id == -1 && n == 4:
		return appendDate(buf, time.Unix(int64(binary.BigEndian.Uint32(b)), 0)), nil
	case id == -1 && n == 8:
		v := binary.BigEndian.Uint64(b)
		return appendDate(buf, time.Unix(int64(v&(1<<34-1)), int64(v>>34))), nil
	case id == -1 && n == 12:
		return appendDate(buf, time.Unix(int64(binary.BigEndian.Uint64(b[4:])), int64(binary.BigEndian.Uint32(b)))), nil
	case id == 0 && c == msgpcode.FixExt1:
		return append(buf, "null"...), nil
	case id == 0 && c == msgpcode.FixExt8:
		ms := float64(binary.BigEndian.Uint32(b))*4294967296 + float64(binary.BigEndian.Uint32(b[4:]))
		return appendDate(buf, time.UnixMilli(int64(ms))), nil
	case id == 0:
		return r.attach(buf, b), nil
	}
	return append(buf, "null"...), nil
}

func appendDate(buf []byte, t time.Time) []byte {
	return appendJSONString(buf, t.UTC().Format("2006-01-02T15:04:05.000Z"))
}

// appendFloat writes f as JSON.stringify would (NaN and infinities as null).
func appendFloat(buf []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(buf, "null"...)
	}
	b, _ := json.Marshal(f)
	return append(buf, b...)
}

// appendJSONString quotes s as JSON; plain ASCII without an encoder.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			var sb strings.Builder
			enc := json.NewEncoder(&sb)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(s)
			return append(buf, strings.TrimSuffix(sb.String(), "\n")...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// appendJSON renders a tree (see rawJSON) as JSON.
func appendJSON(buf []byte, v any) ([]byte, error) {
	var err error
	switch t := v.(type) {
	case *object:
		buf = append(buf, '{')
		for i, k := range t.keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, k)
			buf = append(buf, ':')
			if buf, err = appendJSON(buf, t.vals[i]); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	case string:
		return appendJSONString(buf, t), nil
	case int64:
		return strconv.AppendInt(buf, t, 10), nil
	case bool:
		return strconv.AppendBool(buf, t), nil
	case []string:
		return appendJSONStrings(buf, t), nil
	case []any:
		buf = append(buf, '[')
		for i, x := range t {
			if i > 0 {
				buf = append(buf, ',')
			}
			if buf, err = appendJSON(buf, x); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case rawJSON:
		if !json.Valid(t) {
			return nil, errors.New("invalid JSON")
		}
		return append(buf, t...), nil
	case eventPacket:
		buf = append(buf, `{"type":`...)
		buf = strconv.AppendInt(buf, packetEvent, 10)
		buf = append(buf, `,"data":`...)
		if buf, err = appendJSON(buf, t.data); err != nil {
			return nil, err
		}
		if t.nsp != "" {
			buf = append(buf, `,"nsp":`...)
			buf = appendJSONString(buf, t.nsp)
		}
		return append(buf, '}'), nil
	case *broadcastOpts:
		buf = append(buf, `{"rooms":`...)
		buf = appendJSONStrings(buf, t.rooms)
		buf = append(buf, `,"except":`...)
		buf = appendJSONStrings(buf, t.except)
		switch {
		case t.ack:
			buf = append(buf, `,"flags":{"timeout":`...)
			buf = strconv.AppendInt(buf, t.timeout.Milliseconds(), 10)
			buf = append(buf, '}')
		case t.volatile:
			buf = append(buf, `,"flags":{"volatile":true}`...)
		default:
			buf = append(buf, `,"flags":{}`...)
		}
		return append(buf, '}'), nil
	}
	return nil, fmt.Errorf("unexpected %T", v)
}

func appendJSONStrings(buf []byte, l []string) []byte {
	buf = append(buf, '[')
	for i, x := range l {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, x)
	}
	return append(buf, ']')
}

// isJSONArray is whether b starts, after blanks, as a JSON array.
func isJSONArray(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '['
}

func checkPlaceholders(v any, n int) error {
	switch t := v.(type) {
	case placeholder:
		if int(t) >= n {
			return fmt.Errorf("placeholder %d but %d attachments", t, n)
		}
	case []any:
		for _, x := range t {
			if err := checkPlaceholders(x, n); err != nil {
				return err
			}
		}
	case *object:
		for _, x := range t.vals {
			if err := checkPlaceholders(x, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// encodeValue renders a parsed JSON value (parseJSON's types) as msgpack,
// placeholders as bin from attachments.
func encodeValue(v any, attachments [][]byte) ([]byte, error) {
	var buf bytes.Buffer
	w := &writer{e: msgpack.NewEncoder(&buf), attachments: attachments}
	w.value(v)
	if w.err != nil {
		return nil, w.err
	}
	return buf.Bytes(), nil
}
