// Package recovery holds what Socket.IO's connection state recovery needs
// in the core: the journal of recent broadcasts (each with its offset) and
// the in-memory session store of a single instance. Across instances the
// adapter plugin keeps sessions and broadcasts (sdk.SessionStore); the
// journal then only bridges the moment between the plugin's answer and the
// socket's rejoining its rooms.
package recovery

import (
	"strconv"
	"strings"
)

// Offset is a broadcast's position: a Redis stream entry id ("ms-seq"),
// or a journal's own sequence number ("0-seq").
type Offset struct{ Hi, Lo uint64 }

// ParseOffset reads an offset; ok is false for anything else.
func ParseOffset(s string) (o Offset, ok bool) {
	hi, lo, dash := strings.Cut(s, "-")
	var err error
	if o.Hi, err = strconv.ParseUint(hi, 10, 64); err != nil {
		return Offset{}, false
	}
	if dash {
		if o.Lo, err = strconv.ParseUint(lo, 10, 64); err != nil {
			return Offset{}, false
		}
	}
	return o, true
}

// Less orders offsets as Redis orders stream ids.
func (o Offset) Less(p Offset) bool { return o.Hi < p.Hi || (o.Hi == p.Hi && o.Lo < p.Lo) }

// next is the smallest offset after o.
func (o Offset) next() Offset { return Offset{o.Hi, o.Lo + 1} }

// LastOffset returns the offset a broadcast frame carries as its last
// argument (`...,"<offset>"]`), if any. It reads from the end and
// allocates nothing.
func LastOffset(frame []byte) (Offset, bool) {
	n := len(frame)
	if n < 4 || frame[n-1] != ']' || frame[n-2] != '"' {
		return Offset{}, false
	}
	end := n - 2
	i := end - 1
	for i >= 0 && frame[i] != '"' {
		c := frame[i]
		if (c < '0' || c > '9') && c != '-' {
			return Offset{}, false
		}
		i--
	}
	if i < 1 || frame[i-1] != ',' {
		return Offset{}, false
	}
	return ParseOffset(string(frame[i+1 : end]))
}

// AppendOffset returns the event array data (["event", ...]) with offset
// appended as its last argument, in a new slice.
func AppendOffset(data []byte, offset string) []byte {
	if len(data) < 2 || data[len(data)-1] != ']' {
		return data
	}
	out := make([]byte, 0, len(data)+len(offset)+3)
	out = append(out, data[:len(data)-1]...)
	out = append(out, ',', '"')
	out = append(out, offset...)
	return append(out, '"', ']')
}
