package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/socketfleet/socketfleet/sdk"
)

// The streams mode's stream entries, as @socket.io/redis-streams-adapter
// 0.3.1 writes them: fields uid, nsp, type (the ClusterAdapter type as a
// decimal string) and data: the message's data as JSON, or, when it
// carries binary, base64 of its msgpack. Readers sniff a leading '{'.

// streamHash is Java's String.hashCode over UTF-16 code units, as an int32,
// as Node's hashCode computes it to pick a namespace's stream.
func streamHash(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			h = h*31 + int32(0xD800+(r>>10))
			h = h*31 + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = h*31 + int32(r)
	}
	return h
}

// streamFor is the stream of a namespace: the stream name, or with several
// streams name-<hash % count> (JavaScript's % keeps the sign: a negative
// hash gives "name--3", and so does Go's).
func streamFor(name string, count int, nsp string) string {
	if count <= 1 {
		return name
	}
	return name + "-" + strconv.Itoa(int(streamHash(nsp)%int32(count)))
}

// streamArgs is one XADD as Node sends it: XADD <stream> MAXLEN ~ <maxLen>
// * uid <uid> nsp <nsp> type <n> [data <data>], plus our mid <mid> last
// (see streams_dedupe.go; Node ignores it).
func streamArgs(stream string, maxLen int64, uid, nsp string, typ int, data, mid string) []any {
	args := make([]any, 0, 16)
	args = append(args, "XADD", stream, "MAXLEN", "~", maxLen, "*", "uid", uid, "nsp", nsp, "type", strconv.Itoa(typ))
	if data != "" {
		args = append(args, "data", data)
	}
	if mid != "" {
		args = append(args, midField, mid)
	}
	return args
}

// streamData renders a message's data field: JSON, or base64(msgpack) when
// attachments are given (the types that may carry binary and do).
func streamData(data *object, attachments [][]byte) (string, error) {
	if len(attachments) == 0 {
		b, err := appendJSON(make([]byte, 0, 256), data)
		return string(b), err
	}
	b, err := encodeValue(data, attachments)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// encodeStreamBroadcast is the data of a BROADCAST without ack.
func encodeStreamBroadcast(m *sdk.AdapterMessage) (string, error) {
	if !isJSONArray(m.Data) {
		return "", errors.New("message data is not a JSON array")
	}
	opts := &broadcastOpts{rooms: m.Rooms, except: m.Except, volatile: m.Volatile}
	return streamData(shObj("packet", eventPacket{data: rawJSON(m.Data)}, "opts", opts), m.Attachments)
}

// decodeStreamEntry parses an entry's fields into a ClusterAdapter
// message; ok is false for entries without a namespace (Node skips them).
func decodeStreamEntry(values map[string]any) (w *shWire, ok bool, err error) {
	str := func(k string) string {
		v, _ := values[k].(string)
		return v
	}
	w = &shWire{UID: str("uid"), Nsp: str("nsp")}
	if w.Nsp == "" {
		return nil, false, nil
	}
	typ, err := strconv.Atoi(str("type"))
	if err != nil {
		return nil, false, fmt.Errorf("type %q", str("type"))
	}
	w.Type = typ
	data := str("data")
	switch {
	case data == "":
	case strings.HasPrefix(data, "{"):
		if err := json.Unmarshal([]byte(data), &w.Data); err != nil {
			return nil, false, err
		}
	default:
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, false, err
		}
		d := msgpack.NewDecoder(bytes.NewReader(b))
		if err := decodeMap(d, func(k string) error { return shDecodeData(d, w, k) }); err != nil {
			return nil, false, err
		}
	}
	return w, true, nil
}

// includes is Node's shouldIncludePacket: a broadcast reaches a session
// when it targets no room or one of the session's, and excludes none.
func includes(sessionRooms, rooms, except []string) bool {
	in := len(rooms) == 0
	for _, r := range sessionRooms {
		for _, x := range except {
			if r == x {
				return false
			}
		}
		if !in {
			for _, x := range rooms {
				if r == x {
					in = true
					break
				}
			}
		}
	}
	return in
}

// validOffset is Node's check of a client's offset: <ms>-<seq>.
func validOffset(s string) bool {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok || ms == "" || seq == "" {
		return false
	}
	for _, c := range ms + seq {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// nextOffset is the smallest id after offset (an inclusive XRANGE start
// that works before Redis 6.2's exclusive ranges), as Node computes it.
func nextOffset(offset string) string {
	ms, seq, _ := strings.Cut(offset, "-")
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return offset
	}
	if n == ^uint64(0) {
		m, _ := strconv.ParseUint(ms, 10, 64)
		return strconv.FormatUint(m+1, 10) + "-0"
	}
	return ms + "-" + strconv.FormatUint(n+1, 10)
}
