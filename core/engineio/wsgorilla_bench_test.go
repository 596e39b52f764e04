package engineio

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkReadMessageGorilla is BenchmarkReadMessage through gorilla's
// server-side Conn, which read WebSocket frames here before wsframe.go:
// the reference for its numbers.
func BenchmarkReadMessageGorilla(b *testing.B) {
	for _, size := range []int{64, 1024, 64 << 10} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			frame := clientFrame(true, opText, bytes.Repeat([]byte("a"), size), true)
			nc := &repeatConn{repeatReader: repeatReader{b: frame}}
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			up := websocket.Upgrader{WriteBufferSize: 4096, WriteBufferPool: nopPool{}}
			c, err := up.Upgrade(&hijackRecorder{ResponseRecorder: httptest.NewRecorder(), nc: nc}, req, nil)
			if err != nil {
				b.Fatal(err)
			}
			c.SetReadLimit(1 << 20)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, data, err := c.ReadMessage(); err != nil || len(data) != size {
					b.Fatal(err)
				}
			}
		})
	}
}

type nopPool struct{}

func (nopPool) Get() any { return nil }
func (nopPool) Put(any)  {}

type hijackRecorder struct {
	*httptest.ResponseRecorder
	nc net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.nc, bufio.NewReadWriter(bufio.NewReaderSize(h.nc, readBufferSize), bufio.NewWriter(h.nc)), nil
}

var _ http.Hijacker = (*hijackRecorder)(nil)

// repeatConn serves the same bytes forever and discards what is written.
type repeatConn struct {
	repeatReader
	net.Conn // nil: the methods gorilla does not call
}

func (c *repeatConn) Read(p []byte) (int, error)       { return c.repeatReader.Read(p) }
func (c *repeatConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *repeatConn) Close() error                     { return nil }
func (c *repeatConn) SetDeadline(time.Time) error      { return nil }
func (c *repeatConn) SetReadDeadline(time.Time) error  { return nil }
func (c *repeatConn) SetWriteDeadline(time.Time) error { return nil }
func (c *repeatConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *repeatConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
