// Command floor is the least a server can do for the fanout scenarios of
// `make bench` (bench/README.md): the same contract as bench/socketfleet.hcl
// and bench/node/server.js, with nothing else. A broadcast builds its
// WebSocket frame once and does one write(2) per recipient on the
// publisher's reader goroutine: no sessions, no queues, no limits, no
// recovery. Its CPU per delivery is the floor the other servers are
// measured against.
//
//	join     args[0] is a room name or {room}: join it; ack {ok:true}
//	publish  args[0].room: the event, unchanged, to everyone in that room
//
// It speaks Engine.IO v4 over WebSocket only (a polling GET gets the open
// packet, enough for a readiness probe), namespace "/" only, and pings
// every connection every 25 s from one goroutine. It is a bench tool, not a
// server: a frame it does not understand closes the connection.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const pingInterval = 25 * time.Second

func main() {
	addr := flag.String("addr", "127.0.0.1:8083", "listen address")
	flag.Parse()
	if p := os.Getenv("PORT"); p != "" {
		*addr = "127.0.0.1:" + p
	}
	s := &server{rooms: map[string]*room{}, conns: map[*conn]struct{}{}}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("floor: listen: %v", err)
	}
	log.Printf("floor listening on %s", ln.Addr())
	go s.pinger()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; os.Exit(0) }()
	log.Fatal(http.Serve(ln, s))
}

type server struct {
	mu    sync.Mutex
	rooms map[string]*room
	conns map[*conn]struct{}
}

// room holds its members as a copy-on-write slice: a broadcast walks a
// snapshot without a lock.
type room struct {
	members atomic.Pointer[[]*conn]
}

// conn is one WebSocket connection. Writes of the publisher's goroutine and
// of the connection's own reader (acks, pings) are serialized by mu.
type conn struct {
	nc net.Conn
	fd int
	mu sync.Mutex
}

// write sends one whole frame: one write(2) when the socket takes it all,
// which it does at the bench's rates; the rest, if any, through the
// runtime's poller (blocking this goroutine: the floor has no queues).
func (c *conn) write(frame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(c.fd), uintptr(unsafe.Pointer(&frame[0])), uintptr(len(frame)))
	if errno == 0 && int(n) == len(frame) {
		return nil
	}
	if errno != 0 && errno != syscall.EAGAIN {
		return errno
	}
	if errno != 0 {
		n = 0
	}
	_, err := c.nc.Write(frame[n:])
	return err
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("transport") != "websocket" {
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		_, _ = io.WriteString(w, string(openPacket()))
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if key == "" {
		http.Error(w, "not a WebSocket handshake", http.StatusBadRequest)
		return
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n"
	c := &conn{nc: nc, fd: -1}
	if tc, ok := nc.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { c.fd = int(fd) })
		}
	}
	if c.fd < 0 {
		nc.Close()
		return
	}
	if _, err := nc.Write(append([]byte(resp), frame(nil, openPacket())...)); err != nil {
		nc.Close()
		return
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.serve(c, brw.Reader)
}

func openPacket() []byte {
	var id [8]byte
	_, _ = rand.Read(id[:])
	return []byte(`0{"sid":"` + hex.EncodeToString(id[:]) + `","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`)
}

// serve reads the connection's frames until it ends, then forgets it.
func (s *server) serve(c *conn, br *bufio.Reader) {
	var joined []string
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		for _, name := range joined {
			s.leave(name, c)
		}
		s.mu.Unlock()
		c.nc.Close()
	}()
	var buf, out []byte
	for {
		op, p, err := readFrame(br, buf[:0])
		if err != nil {
			return
		}
		buf = p
		switch op {
		case 0x8: // close
			return
		case 0x9, 0xA: // ping, pong
			continue
		}
		if len(p) == 0 {
			continue
		}
		switch p[0] {
		case '1': // Engine.IO close
			return
		case '3': // pong
			continue
		case '4':
		default:
			return
		}
		p = p[1:]
		switch {
		case len(p) >= 1 && p[0] == '0': // CONNECT
			var id [8]byte
			_, _ = rand.Read(id[:])
			out = frame(out[:0], []byte(`40{"sid":"`+hex.EncodeToString(id[:])+`"}`))
		case len(p) >= 1 && p[0] == '2': // EVENT
			ack, rest := ackID(p[1:])
			name, arg := eventOf(rest)
			switch name {
			case "join":
				room := roomOf(arg)
				if room == "" {
					return
				}
				s.mu.Lock()
				s.join(room, c)
				s.mu.Unlock()
				joined = append(joined, room)
				if ack == nil {
					continue
				}
				out = frame(out[:0], append(append([]byte("43"), ack...), `[{"ok":true}]`...))
			case "publish":
				s.publish(roomOf(arg), rest)
				continue
			default:
				continue
			}
		default:
			continue
		}
		if c.write(out) != nil {
			return
		}
	}
}

func (s *server) join(name string, c *conn) {
	r := s.rooms[name]
	if r == nil {
		r = &room{}
		r.members.Store(&[]*conn{})
		s.rooms[name] = r
	}
	old := *r.members.Load()
	next := make([]*conn, len(old), len(old)+1)
	copy(next, old)
	next = append(next, c)
	r.members.Store(&next)
}

func (s *server) leave(name string, c *conn) {
	r := s.rooms[name]
	if r == nil {
		return
	}
	old := *r.members.Load()
	next := make([]*conn, 0, len(old))
	for _, m := range old {
		if m != c {
			next = append(next, m)
		}
	}
	r.members.Store(&next)
}

// publish sends `42` + event (the received `[...]`, without the ack id) to
// every member of the room: one frame, one write per member.
func (s *server) publish(name string, event []byte) {
	s.mu.Lock()
	r := s.rooms[name]
	s.mu.Unlock()
	if r == nil {
		return
	}
	f := frame(make([]byte, 0, len(event)+16), append([]byte("42"), event...))
	for _, m := range *r.members.Load() {
		_ = m.write(f) // a broken member is cut by its own reader
	}
}

// pinger sends an Engine.IO ping to every connection every 25 s.
func (s *server) pinger() {
	ping := frame(nil, []byte("2"))
	for range time.Tick(pingInterval) {
		s.mu.Lock()
		all := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			all = append(all, c)
		}
		s.mu.Unlock()
		for _, c := range all {
			_ = c.write(ping)
		}
	}
}

// frame appends an unmasked, final text frame holding p.
func frame(b, p []byte) []byte {
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x81, byte(n))
	case n < 1<<16:
		b = append(b, 0x81, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x81, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}

var errFrame = errors.New("unsupported frame")

// readFrame reads one whole client frame (masked, unfragmented) into b.
func readFrame(br *bufio.Reader, b []byte) (byte, []byte, error) {
	var h [14]byte
	if _, err := io.ReadFull(br, h[:2]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[1]&0x80 == 0 {
		return 0, nil, errFrame
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(br, h[2:4]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		if _, err := io.ReadFull(br, h[2:10]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(h[2:10])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes: %w", n, errFrame)
	}
	var mask [4]byte
	if _, err := io.ReadFull(br, mask[:]); err != nil {
		return 0, nil, err
	}
	b = append(b[:0], make([]byte, n)...)
	if _, err := io.ReadFull(br, b); err != nil {
		return 0, nil, err
	}
	for i := range b {
		b[i] ^= mask[i&3]
	}
	return h[0] & 0x0f, b, nil
}

// ackID splits `<digits>[...]` into the ack id (nil when none) and the rest.
func ackID(p []byte) ([]byte, []byte) {
	i := 0
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		i++
	}
	if i == 0 {
		return nil, p
	}
	return p[:i], p[i:]
}

// eventOf returns the event name and the bytes after `["name",` of an
// event array (the bench's names need no unescaping).
func eventOf(p []byte) (string, []byte) {
	if len(p) < 4 || p[0] != '[' || p[1] != '"' {
		return "", nil
	}
	end := bytes.IndexByte(p[2:], '"')
	if end < 0 {
		return "", nil
	}
	name := string(p[2 : 2+end])
	rest := p[2+end+1:]
	if len(rest) > 0 && rest[0] == ',' {
		rest = rest[1:]
	}
	return name, rest
}

// roomOf reads the room of a join or publish argument: `"name"` or
// `{"room":"name",...}`.
func roomOf(arg []byte) string {
	if len(arg) > 0 && arg[0] == '"' {
		if end := bytes.IndexByte(arg[1:], '"'); end >= 0 {
			return string(arg[1 : 1+end])
		}
		return ""
	}
	i := bytes.Index(arg, []byte(`"room":"`))
	if i < 0 {
		return ""
	}
	arg = arg[i+len(`"room":"`):]
	if end := bytes.IndexByte(arg, '"'); end >= 0 {
		return string(arg[:end])
	}
	return ""
}
