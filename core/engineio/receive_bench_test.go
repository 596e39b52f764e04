package engineio

import (
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/socketfleet/socketfleet/core/protocol/eiowire"
)

// BenchmarkReceiveText is the receive path of one WebSocket text frame up
// to the handler: the UTF-8 check, the decode, the packet rate limiter.
// BenchmarkUTF8Valid is the UTF-8 check alone, for scale.
func BenchmarkReceiveText(b *testing.B) {
	names, frames := benchFrames()
	for i, frame := range frames {
		b.Run(names[i], func(b *testing.B) {
			srv := NewServer(benchOptions(), nil)
			s := newSession(srv, "sid", httptest.NewRequest("GET", "/socket.io/?EIO=4", nil), true)
			n := 0
			s.SetHandler(func(eiowire.Packet) { n++ }, func(string) {})
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if !s.handleFrame(opText, frame) {
					b.Fatal("closed")
				}
			}
		})
	}
}

func BenchmarkUTF8Valid(b *testing.B) {
	names, frames := benchFrames()
	for i, frame := range frames {
		b.Run(names[i], func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if !utf8.Valid(frame) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

// benchFrames are chat events of a few sizes, ASCII and not.
func benchFrames() (names []string, frames [][]byte) {
	for _, size := range []int{64, 1024, 64 << 10} {
		for _, ch := range []string{"a", "é"} {
			text := strings.Repeat(ch, (size-48)/len(ch))
			names = append(names, strconv.Itoa(size)+"B-"+map[string]string{"a": "ascii", "é": "utf8"}[ch])
			frames = append(frames, []byte(`42["chat:message",{"room":"lobby","text":"`+text+`"}]`))
		}
	}
	return names, frames
}
