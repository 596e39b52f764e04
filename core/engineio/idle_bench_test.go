package engineio

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/socketfleet/socketfleet/core/protocol/eiowire"
)

type idleHandler struct{}

func (idleHandler) Open(s *Session) { s.SetHandler(func(eiowire.Packet) {}, func(string) {}) }

// BenchmarkIdleWebSocketHeap is the live heap that one idle WebSocket
// session costs (parked, after one message), measured over 4,000 of them
// after the collector ran: the
// Session and what hangs off it, the server's socket (net.netFD, addresses),
// the session table's entry. The clients are raw TCP sockets in the same
// process, so their side (a net.TCPConn and its netFD each, ~250 B) is
// counted too, the same before and after a change; so are they in
// allocB/conn, all that the handshakes and first messages allocated, the
// garbage included. Run with -benchtime=1x.
func BenchmarkIdleWebSocketHeap(b *testing.B) {
	const n = 4000
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := NewServer(Options{Log: logrus.NewEntry(log), PingInterval: time.Hour, PingTimeout: time.Hour}, idleHandler{})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	addr := strings.TrimPrefix(ts.URL, "http://")
	req := "GET /?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + addr +
		"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	heap := func() (live, total uint64) {
		var ms runtime.MemStats
		for range 3 {
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc, ms.TotalAlloc
	}
	for b.Loop() {
		conns := make([]net.Conn, 0, n)
		before, allocBefore := heap()
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.WriteString(c, req); err != nil {
				b.Fatal(err)
			}
			br := bufio.NewReaderSize(c, 512)
			res, err := http.ReadResponse(br, nil)
			if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
				b.Fatalf("handshake: %v", err)
			}
			var h [2]byte // the open packet, short enough for one byte of length
			if _, err := io.ReadFull(br, h[:]); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(br, make([]byte, h[1]&0x7F)); err != nil {
				b.Fatal(err)
			}
			// A first message, as a Socket.IO client's CONNECT: the
			// handshake's goroutine reads it and the reader parks.
			if _, err := c.Write([]byte{0x81, 0x82, 1, 2, 3, 4, '4' ^ 1, 'x' ^ 2}); err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		for srv.Count() != n {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // the readers park
		after, allocAfter := heap()
		b.ReportMetric(float64(after-before)/n, "heapB/conn")
		b.ReportMetric(float64(allocAfter-allocBefore)/n, "allocB/conn")
		b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
		for _, c := range conns {
			c.Close()
		}
		for srv.Count() != 0 {
			time.Sleep(time.Millisecond)
		}
	}
}
