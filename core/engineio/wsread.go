package engineio

import (
	"bufio"
	"errors"
	"net"
	"net/http"

	"github.com/gorilla/websocket"
)

// How a WebSocket session reads. On Linux an idle session holds no
// goroutine: its socket waits in the server's poller (poller_linux.go),
// which starts a reader when it becomes readable. The reader parks the
// session again once gorilla's read buffer is empty, so the session
// supplies that buffer to be able to tell. Without a poller the session
// keeps one reader goroutine; it waits for readability outside gorilla,
// on a stack shallow enough for the collector to shrink it to 2 KiB
// (blocked inside gorilla's reader it would keep the 4 KiB it started
// with while handshakes run).

// readBufferSize is the read buffer of a WebSocket connection, held for
// its whole life: gorilla adopts a hijacked buffer only when it is larger
// than 256 bytes, and 288 is an allocation size class. Payloads larger
// than the buffer are read straight into the message, past it.
const readBufferSize = 288

// upgrade runs the WebSocket handshake and returns the connection and its
// read buffer.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, hdr http.Header) (*websocket.Conn, *bufio.Reader, error) {
	h := &hijacker{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(h, r, hdr)
	if err != nil {
		return nil, nil, err
	}
	return ws, h.br, nil
}

// hijacker gives gorilla a read buffer of the session's making.
type hijacker struct {
	http.ResponseWriter
	br *bufio.Reader
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Reader.Buffered() > 0 {
		conn.Close()
		return nil, nil, errors.New("websocket: client sent data before the handshake completed")
	}
	h.br = bufio.NewReaderSize(conn, readBufferSize)
	return conn, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// waitReadable blocks, on a shallow stack, until the socket has data (or
// an error) when the read buffer is empty. Without a raw socket it returns
// at once and the read that follows waits.
func (s *Session) waitReadable() {
	if s.raw == nil || s.rd == nil || s.rd.Buffered() > 0 {
		return
	}
	// Errors (a closed socket) surface in the read that follows.
	_ = s.raw.Read(peekReadable)
}

// park hands a session with nothing buffered to the server's poller; true
// means the caller's goroutine must end (the poller starts a reader when
// the socket is readable).
func (s *Session) park() bool {
	if s.raw == nil || s.rd == nil || s.rd.Buffered() > 0 {
		return false
	}
	p := s.srv.pollerFor()
	if p == nil {
		return false
	}
	return p.park(s, s.fd)
}

// unpark takes the session out of the poller before its socket closes.
func (s *Session) unpark() {
	if s.pollToken != 0 {
		if p := s.srv.pollerFor(); p != nil {
			p.forget(s, s.fd)
		}
	}
}
