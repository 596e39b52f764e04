package siowire

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// maxDepth is the deepest nesting of arrays and objects accepted, the same
// limit as encoding/json.
const maxDepth = 10000

// ErrInvalidJSON is wrapped by the errors of SplitArray and by JSON problems
// found while decoding (which also wrap ErrInvalidPacket).
var ErrInvalidJSON = errors.New("socketio: invalid JSON")

// strSafe[c] is true for bytes that may appear unescaped inside a JSON string
// and need no special handling while scanning.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return
}()

// scanner is a single-pass JSON validator over data. It never allocates on
// success. Optionally it checks Socket.IO placeholders
// ({"_placeholder":true,"num":N} needs 0 <= N < nAtt) and it records the span
// of the first element of a top-level array.
type scanner struct {
	data []byte
	// placeholder checking
	checkPH bool
	nAtt    int
	// span of the first element of a top-level array; firstS < 0 if none
	firstS, firstE int
	esc            bool // last string scanned contained an escape sequence
	err            error
}

func (s *scanner) fail(i int, what string) int {
	if s.err == nil {
		s.err = fmt.Errorf("%w: %s at offset %d", ErrInvalidJSON, what, i)
	}
	return -1
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) ws(i int) int {
	for i < len(s.data) && isWS(s.data[i]) {
		i++
	}
	return i
}

// top validates the whole of s.data as a single JSON value surrounded by
// optional whitespace. It returns the first byte of the value.
func (s *scanner) top() (byte, error) {
	s.firstS = -1
	i := s.ws(0)
	if i >= len(s.data) {
		return 0, fmt.Errorf("%w: empty", ErrInvalidJSON)
	}
	c := s.data[i]
	i = s.value(i, 0)
	if i < 0 {
		return 0, s.err
	}
	if i = s.ws(i); i != len(s.data) {
		s.fail(i, "trailing data")
		return 0, s.err
	}
	return c, nil
}

// value scans the value starting at i (no leading whitespace) and returns
// the index just after it, or -1.
func (s *scanner) value(i, depth int) int {
	d := s.data
	if i >= len(d) {
		return s.fail(i, "unexpected end")
	}
	switch c := d[i]; c {
	case '"':
		return s.str(i)
	case '{':
		return s.object(i, depth+1)
	case '[':
		return s.array(i, depth+1)
	case 't':
		return s.lit(i, "true")
	case 'f':
		return s.lit(i, "false")
	case 'n':
		return s.lit(i, "null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return s.number(i)
		}
		return s.fail(i, "unexpected character")
	}
}

func (s *scanner) lit(i int, word string) int {
	if len(s.data)-i < len(word) || string(s.data[i:i+len(word)]) != word {
		return s.fail(i, "bad literal")
	}
	return i + len(word)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// str scans the string whose opening quote is at i.
func (s *scanner) str(i int) int {
	d := s.data
	s.esc = false
	i++
	for {
		for i < len(d) && strSafe[d[i]] {
			i++
		}
		if i >= len(d) {
			return s.fail(i, "unterminated string")
		}
		switch d[i] {
		case '"':
			return i + 1
		case '\\':
			s.esc = true
			if i+1 >= len(d) {
				return s.fail(i, "unterminated string")
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) || !isHex(d[i+5]) {
					return s.fail(i, "bad \\u escape")
				}
				i += 6
			default:
				return s.fail(i, "bad escape")
			}
		default:
			return s.fail(i, "control character in string")
		}
	}
}

func (s *scanner) number(i int) int {
	d := s.data
	start := i
	if d[i] == '-' {
		i++
	}
	if i >= len(d) {
		return s.fail(start, "bad number")
	}
	switch c := d[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i++
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return s.fail(start, "bad number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			return s.fail(start, "bad number")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			return s.fail(start, "bad number")
		}
	}
	return i
}

const (
	keyOther = iota
	keyPlaceholder
	keyNum
)

// keyKind classifies the quoted object key raw (quotes included).
func keyKind(raw []byte, esc bool) int {
	if esc {
		var k string
		if json.Unmarshal(raw, &k) != nil {
			return keyOther
		}
		raw = []byte(k) // rare path
	} else {
		raw = raw[1 : len(raw)-1]
	}
	switch string(raw) {
	case "_placeholder":
		return keyPlaceholder
	case "num":
		return keyNum
	}
	return keyOther
}

func (s *scanner) object(i, depth int) int {
	d := s.data
	if depth > maxDepth {
		return s.fail(i, "nesting too deep")
	}
	i = s.ws(i + 1)
	if i < len(d) && d[i] == '}' {
		return i + 1
	}
	// Placeholder state; as with JSON.parse the last duplicate key wins.
	var phTrue bool
	numS, numE := -1, -1
	for {
		if i >= len(d) || d[i] != '"' {
			return s.fail(i, "expected object key")
		}
		ks := i
		if i = s.str(i); i < 0 {
			return -1
		}
		ke, kesc := i, s.esc
		i = s.ws(i)
		if i >= len(d) || d[i] != ':' {
			return s.fail(i, "expected ':'")
		}
		i = s.ws(i + 1)
		vs := i
		if i = s.value(i, depth); i < 0 {
			return -1
		}
		if s.checkPH {
			switch keyKind(d[ks:ke], kesc) {
			case keyPlaceholder:
				phTrue = d[vs] == 't'
			case keyNum:
				numS, numE = vs, i
			}
		}
		i = s.ws(i)
		if i >= len(d) {
			return s.fail(i, "unterminated object")
		}
		if d[i] == ',' {
			i = s.ws(i + 1)
			continue
		}
		if d[i] != '}' {
			return s.fail(i, "expected ',' or '}'")
		}
		i++
		break
	}
	if phTrue && !s.placeholderOK(numS, numE) {
		if s.err == nil {
			s.err = fmt.Errorf("%w: illegal attachments: placeholder %q with %d attachments",
				ErrInvalidPacket, placeholderNum(d, numS, numE), s.nAtt)
		}
		return -1
	}
	return i
}

func placeholderNum(d []byte, s, e int) string {
	if s < 0 {
		return "(no num)"
	}
	return string(d[s:e])
}

// placeholderOK reports whether the "num" value d[s:e] is a plain
// non-negative integer below the attachment count.
func (s *scanner) placeholderOK(start, end int) bool {
	if start < 0 || end-start > 9 {
		return false
	}
	n := 0
	for _, c := range s.data[start:end] {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n < s.nAtt
}

func (s *scanner) array(i, depth int) int {
	d := s.data
	if depth > maxDepth {
		return s.fail(i, "nesting too deep")
	}
	i = s.ws(i + 1)
	if i < len(d) && d[i] == ']' {
		return i + 1
	}
	first := true
	for {
		vs := i
		if i = s.value(i, depth); i < 0 {
			return -1
		}
		if first && depth == 1 {
			s.firstS, s.firstE = vs, i
			first = false
		}
		i = s.ws(i)
		if i >= len(d) {
			return s.fail(i, "unterminated array")
		}
		if d[i] == ',' {
			i = s.ws(i + 1)
			continue
		}
		if d[i] != ']' {
			return s.fail(i, "expected ',' or ']'")
		}
		return i + 1
	}
}

// Valid reports whether data is one valid JSON value (with optional
// surrounding whitespace). It agrees with encoding/json.Valid, is faster, and
// does not allocate. Like encoding/json it does not check UTF-8 validity.
func Valid(data []byte) bool {
	s := scanner{data: data}
	_, err := s.top()
	return err == nil
}

// SplitArray returns the top-level elements of the JSON array raw, each
// sub-slice aliasing raw with surrounding whitespace trimmed (and capacity
// capped, so appending to an element never overwrites raw). It returns an
// error if raw is not a valid JSON array. An empty array yields a nil slice.
func SplitArray(raw []byte) ([][]byte, error) {
	// The top level is parsed here rather than by the scanner so that the
	// element buffer stays on the stack: one allocation, of the exact size.
	s := scanner{data: raw}
	i := s.ws(0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, fmt.Errorf("%w: not an array", ErrInvalidJSON)
	}
	var buf [16][]byte
	elems := buf[:0]
	i = s.ws(i + 1)
	if i < len(raw) && raw[i] == ']' {
		i++
	} else {
		for {
			vs := i
			if i = s.value(i, 1); i < 0 {
				return nil, s.err
			}
			elems = append(elems, raw[vs:i:i])
			i = s.ws(i)
			if i < len(raw) && raw[i] == ',' {
				i = s.ws(i + 1)
				continue
			}
			if i < len(raw) && raw[i] == ']' {
				i++
				break
			}
			s.fail(i, "expected ',' or ']'")
			return nil, s.err
		}
	}
	if i = s.ws(i); i != len(raw) {
		s.fail(i, "trailing data")
		return nil, s.err
	}
	if len(elems) == 0 {
		return nil, nil
	}
	out := make([][]byte, len(elems))
	copy(out, elems)
	return out, nil
}

// AppendEvent appends the event array ["event",args...]; args are raw JSON.
// dst grows once (escapes aside).
func AppendEvent(dst []byte, event string, args [][]byte) []byte {
	n := len(event) + 4
	for _, a := range args {
		n += len(a) + 1
	}
	dst = AppendString(append(slices.Grow(dst, n), '['), event)
	for _, a := range args {
		dst = append(append(dst, ','), a...)
	}
	return append(dst, ']')
}

// AppendArray appends '[' + elems joined by ',' + ']' to dst. Elements are
// raw JSON and are copied verbatim.
func AppendArray(dst []byte, elems ...[]byte) []byte {
	dst = append(dst, '[')
	for i, e := range elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, e...)
	}
	return append(dst, ']')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string literal, escaped like
// JSON.stringify: '"' and '\\' and control characters are escaped (\b \f \n
// \r \t, otherwise \u00xx); everything else, including '<', '>', '&', U+2028
// and U+2029, is written as is. Invalid UTF-8 bytes become \ufffd.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendPlaceholder appends the binary placeholder object for attachment num:
// {"_placeholder":true,"num":N}.
func AppendPlaceholder(dst []byte, num int) []byte {
	dst = append(dst, `{"_placeholder":true,"num":`...)
	dst = strconv.AppendInt(dst, int64(num), 10)
	return append(dst, '}')
}

// unquote decodes the JSON string literal raw (already validated).
func unquote(raw []byte) (string, error) {
	for _, c := range raw[1 : len(raw)-1] {
		if c == '\\' {
			var s string
			err := json.Unmarshal(raw, &s)
			return s, err
		}
	}
	return string(raw[1 : len(raw)-1]), nil
}
