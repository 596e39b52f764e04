package engineio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// testKey is the masking key of the frames the tests build.
var testKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// clientFrame builds a client frame: fin, opcode, payload, masked with
// testKey unless masked is false. rsv sets the reserved bits (0x70).
func clientFrame(fin bool, op byte, payload []byte, masked bool) []byte {
	return rawFrame(fin, 0, op, uint64(len(payload)), payload, masked)
}

// rawFrame builds a frame whose length field says n, whatever payload holds.
func rawFrame(fin bool, rsv, op byte, n uint64, payload []byte, masked bool) []byte {
	b0 := rsv | op
	if fin {
		b0 |= 0x80
	}
	var mask byte
	if masked {
		mask = 0x80
	}
	out := []byte{b0}
	switch {
	case n < 126:
		out = append(out, mask|byte(n))
	case n <= 0xFFFF:
		out = append(out, mask|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, n)
	}
	if !masked {
		return append(out, payload...)
	}
	out = append(out, testKey[:]...)
	for i, c := range payload {
		out = append(out, c^testKey[i&3])
	}
	return out
}

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// readAll runs readMessage over in until it fails, and returns what it
// returned and the pings it saw.
type readResult struct {
	ops   []byte
	msgs  []string
	pings []string
	err   error
}

func readFrames(in []byte, limit int64) readResult {
	var res readResult
	var rb readBuf
	src := bytes.NewReader(in)
	for {
		op, data, err := readMessage(&rb, src, limit, func(p []byte) { res.pings = append(res.pings, string(p)) })
		if err != nil {
			res.err = err
			return res
		}
		res.ops = append(res.ops, op)
		res.msgs = append(res.msgs, string(data))
	}
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func TestReadMessage(t *testing.T) {
	long := func(n int) string { return strings.Repeat("abcdefghijklm", n/13+1)[:n] }
	cases := []struct {
		name  string
		in    []byte
		ops   string // one letter per returned op: t b i(ping) o(pong)
		msgs  []string
		pings []string
		code  int  // 0: the input just ends (io.EOF)
		peer  bool // the peer closed
	}{
		{name: "masked text", in: clientFrame(true, opText, []byte("4hello"), true), ops: "t", msgs: []string{"4hello"}},
		{name: "empty binary", in: clientFrame(true, opBinary, nil, true), ops: "b", msgs: []string{""}},
		{name: "unmasked", in: clientFrame(true, opText, []byte("4hi"), false), code: closeProtocolError},
		{name: "fragmented text", in: cat(clientFrame(false, opText, []byte("4he"), true),
			clientFrame(false, opContinuation, []byte("ll"), true), clientFrame(true, opContinuation, []byte("o"), true)),
			ops: "t", msgs: []string{"4hello"}},
		{name: "fragmented binary, empty first", in: cat(clientFrame(false, opBinary, nil, true),
			clientFrame(true, opContinuation, []byte{0, 1, 2, 255}, true)),
			ops: "b", msgs: []string{"\x00\x01\x02\xff"}},
		{name: "ping inside a fragmented message", in: cat(clientFrame(false, opText, []byte("4a"), true),
			clientFrame(true, opPing, []byte("p1"), true), clientFrame(true, opPong, []byte("x"), true),
			clientFrame(true, opContinuation, []byte("b"), true)),
			ops: "t", msgs: []string{"4ab"}, pings: []string{"p1"}},
		{name: "ping and pong alone", in: cat(clientFrame(true, opPing, []byte("hey"), true), clientFrame(true, opPong, nil, true)),
			ops: "io", msgs: []string{"", ""}, pings: []string{"hey"}},
		{name: "125", in: clientFrame(true, opText, []byte(long(125)), true), ops: "t", msgs: []string{long(125)}},
		{name: "126", in: clientFrame(true, opText, []byte(long(126)), true), ops: "t", msgs: []string{long(126)}},
		{name: "65535", in: clientFrame(true, opBinary, []byte(long(65535)), true), ops: "b", msgs: []string{long(65535)}},
		{name: "65536", in: clientFrame(true, opBinary, []byte(long(65536)), true), ops: "b", msgs: []string{long(65536)}},
		{name: "rsv1", in: rawFrame(true, 0x40, opText, 2, []byte("4a"), true), code: closeProtocolError},
		{name: "rsv3", in: rawFrame(true, 0x10, opText, 2, []byte("4a"), true), code: closeProtocolError},
		{name: "opcode 3", in: clientFrame(true, 3, []byte("x"), true), code: closeProtocolError},
		{name: "opcode 11", in: clientFrame(true, 11, nil, true), code: closeProtocolError},
		{name: "fragmented ping", in: clientFrame(false, opPing, []byte("x"), true), code: closeProtocolError},
		{name: "ping of 126", in: clientFrame(true, opPing, []byte(long(126)), true), code: closeProtocolError},
		{name: "continuation first", in: clientFrame(true, opContinuation, []byte("x"), true), code: closeProtocolError},
		{name: "text inside a fragmented message", in: cat(clientFrame(false, opText, []byte("4a"), true),
			clientFrame(true, opText, []byte("4b"), true)), code: closeProtocolError},
		{name: "64-bit length, top bit", in: rawFrame(true, 0, opBinary, 1<<63, nil, true), code: closeProtocolError},
		{name: "over the limit", in: clientFrame(true, opText, []byte(long(1001)), true), code: closeTooBig},
		{name: "at the limit", in: clientFrame(true, opText, []byte(long(1000)), true), ops: "t", msgs: []string{long(1000)}},
		{name: "fragments over the limit", in: cat(clientFrame(false, opText, []byte(long(600)), true),
			clientFrame(true, opContinuation, []byte(long(401)), true)), code: closeTooBig},
		{name: "1 GiB claimed", in: rawFrame(true, 0, opBinary, 1<<30, nil, true), code: closeTooBig},
		{name: "close with code", in: clientFrame(true, opClose, closePayload(4000, "bye"), true), code: 4000, peer: true},
		{name: "close 1001", in: clientFrame(true, opClose, closePayload(1001, ""), true), code: 1001, peer: true},
		{name: "close without code", in: clientFrame(true, opClose, nil, true), code: closeNormal, peer: true},
		{name: "close of 1 byte", in: clientFrame(true, opClose, []byte{3}, true), code: closeProtocolError},
		{name: "close 1005", in: clientFrame(true, opClose, closePayload(closeNoStatus, ""), true), code: closeProtocolError},
		{name: "close 999", in: clientFrame(true, opClose, closePayload(999, ""), true), code: closeProtocolError},
		{name: "close 5000", in: clientFrame(true, opClose, closePayload(5000, ""), true), code: closeProtocolError},
		{name: "close, bad UTF-8", in: clientFrame(true, opClose, closePayload(1000, "\xff\xfe"), true), code: closeProtocolError},
		{name: "fragmented close", in: clientFrame(false, opClose, closePayload(1000, ""), true), code: closeProtocolError},
		{name: "truncated payload", in: clientFrame(true, opText, []byte("4hello"), true)[:8]},
	}
	letter := map[byte]byte{opText: 't', opBinary: 'b', opPing: 'i', opPong: 'o'}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := readFrames(c.in, 1000)
			if c.name == "65535" || c.name == "65536" {
				res = readFrames(c.in, 1<<20)
			}
			var ops []byte
			for _, op := range res.ops {
				ops = append(ops, letter[op])
			}
			if string(ops) != c.ops || strings.Join(res.msgs, "|") != strings.Join(c.msgs, "|") {
				t.Fatalf("got ops %q msgs %.40q, want %q %.40q", ops, res.msgs, c.ops, c.msgs)
			}
			if strings.Join(res.pings, "|") != strings.Join(c.pings, "|") {
				t.Fatalf("pings %q, want %q", res.pings, c.pings)
			}
			var we *wsError
			if c.code == 0 {
				if !errors.Is(res.err, io.EOF) && !errors.Is(res.err, io.ErrUnexpectedEOF) {
					t.Fatalf("err %v, want the input's end", res.err)
				}
				return
			}
			if !errors.As(res.err, &we) || we.code != c.code || we.peer != c.peer {
				t.Fatalf("err %v (%+v), want code %d peer %v", res.err, we, c.code, c.peer)
			}
		})
	}
}

// readAllocs is the allocations of one readMessage of frame (limit 1e6);
// check judges each result.
func readAllocs(frame []byte, check func(data []byte, err error)) float64 {
	src := bytes.NewReader(frame)
	var rb readBuf
	rb.take()
	return testing.AllocsPerRun(100, func() {
		src.Reset(frame)
		rb.r, rb.w = 0, 0
		_, data, err := readMessage(&rb, src, 1e6, func([]byte) {})
		check(data, err)
	})
}

// A frame that claims more than the limit costs nothing: the check comes
// from the header, before any buffer.
func TestReadLimitAllocatesNothing(t *testing.T) {
	allocs := readAllocs(rawFrame(true, 0, opBinary, 1<<30, nil, true), func(_ []byte, err error) {
		if err != errTooBig {
			t.Fatalf("err %v", err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per refused frame", allocs)
	}
}

// One message costs one allocation, its own buffer.
func TestReadMessageAllocatesOnlyTheMessage(t *testing.T) {
	allocs := readAllocs(clientFrame(true, opText, bytes.Repeat([]byte("x"), 1000), true), func(data []byte, err error) {
		if err != nil || len(data) != 1000 || cap(data) != 1000 {
			t.Fatalf("%d/%d bytes, err %v", len(data), cap(data), err)
		}
	})
	if allocs != 1 {
		t.Fatalf("%v allocations per message, want 1", allocs)
	}
}

func TestMaskBytes(t *testing.T) {
	key := binary.LittleEndian.Uint32(testKey[:])
	for n := range 70 {
		b := bytes.Repeat([]byte{0x5a}, n)
		maskBytes(key, b)
		for i, c := range b {
			if c != 0x5a^testKey[i&3] {
				t.Fatalf("len %d: byte %d is %#x", n, i, c)
			}
		}
	}
}

// FuzzReadMessage: whatever the bytes, readMessage does not panic, never
// returns more than the limit, returns only data opcodes with data, and
// fails only with a close code that may go on the wire.
func FuzzReadMessage(f *testing.F) {
	f.Add(clientFrame(true, opText, []byte("4hello"), true))
	f.Add(cat(clientFrame(false, opBinary, []byte{1, 2}, true), clientFrame(true, opPing, []byte("p"), true),
		clientFrame(true, opContinuation, []byte{3}, true)))
	f.Add(clientFrame(true, opClose, closePayload(1000, "bye"), true))
	f.Add(rawFrame(true, 0, opBinary, 1<<40, nil, true))
	f.Add(clientFrame(true, opText, bytes.Repeat([]byte("y"), 300), true))
	const limit = 512
	f.Fuzz(func(t *testing.T, in []byte) {
		var rb readBuf
		src := bytes.NewReader(in)
		for range 64 {
			op, data, err := readMessage(&rb, src, limit, func(p []byte) {
				if len(p) > maxControlPayload {
					t.Fatalf("ping of %d bytes", len(p))
				}
			})
			if err != nil {
				var we *wsError
				if errors.As(err, &we) && !we.peer && we.code != closeProtocolError && we.code != closeTooBig {
					t.Fatalf("failure with code %d", we.code)
				}
				if errors.As(err, &we) && we.peer && !validCloseCode(we.code) {
					t.Fatalf("echo of code %d", we.code)
				}
				return
			}
			if len(data) > limit {
				t.Fatalf("%d bytes over the limit %d", len(data), limit)
			}
			if op != opText && op != opBinary && op != opPing && op != opPong {
				t.Fatalf("op %d", op)
			}
		}
	})
}

// repeatReader is a reader that serves the same bytes forever.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}

// BenchmarkReadMessage reads masked text messages of a few sizes through
// the 288-byte read buffer.
func BenchmarkReadMessage(b *testing.B) {
	for _, size := range []int{64, 1024, 64 << 10} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			frame := clientFrame(true, opText, bytes.Repeat([]byte("a"), size), true)
			var rb readBuf
			src := &repeatReader{b: frame}
			ping := func([]byte) {}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, data, err := readMessage(&rb, src, 1<<20, ping); err != nil || len(data) != size {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMaskBytes(b *testing.B) {
	buf := make([]byte, 1024)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		maskBytes(0x3d21fa37, buf)
	}
}

// Frames back to back, of every length around the buffer's size, read
// through sources that return a byte at a time, half of what is asked, or
// the data with io.EOF: the buffer slides and refills without losing or
// reordering a byte.
func TestReadMessageSplitReads(t *testing.T) {
	var in []byte
	var want []string
	for n := 0; n < 2*readBufferSize; n += 7 {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		if n%3 == 0 && n > 1 { // some fragmented, with a ping between
			in = append(in, clientFrame(false, opBinary, msg[:n/2], true)...)
			in = append(in, clientFrame(true, opPing, []byte("p"), true)...)
			in = append(in, clientFrame(true, opContinuation, msg[n/2:], true)...)
		} else {
			in = append(in, clientFrame(true, opBinary, msg, true)...)
		}
		want = append(want, string(msg))
	}
	sources := map[string]func() io.Reader{
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(in)) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(in)) },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(in)) },
		"whole":    func() io.Reader { return bytes.NewReader(in) },
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			var rb readBuf
			r := src()
			var got []string
			for {
				op, data, err := readMessage(&rb, r, 1<<20, func([]byte) {})
				if err != nil {
					if err != io.EOF {
						t.Fatalf("after %d messages: %v", len(got), err)
					}
					break
				}
				if op == opBinary {
					got = append(got, string(data))
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d messages, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("message %d differs (%d bytes, want %d)", i, len(got[i]), len(want[i]))
				}
			}
		})
	}
}
