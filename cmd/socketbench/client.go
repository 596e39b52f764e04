package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// A minimal Engine.IO v4 / Socket.IO v5 client, namespace "/" only: just
// what the scenarios need, kept cheap on the receive path.
//
// Engine.IO packets are text: a type digit and data. 0 open, 1 close,
// 2 ping, 3 pong, 4 message, 6 noop. A Socket.IO packet travels as the data
// of a message: "40" CONNECT, "42[...]" EVENT, "43<id>[...]" ACK,
// "44{...}" CONNECT_ERROR. Over WebSocket one frame holds one Engine.IO
// packet; over polling a payload holds several, separated by 0x1e.

var (
	errClosed = errors.New("connection closed by the server")
	// wsDialer is shared by every WebSocket client: small buffers (10,000
	// idle connections should cost the generator little) and write buffers
	// from a pool, held only while a write is in progress.
	wsDialer = &websocket.Dialer{
		Proxy:            nil,
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
		WriteBufferPool:  &sync.Pool{},
		NetDialContext:   (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	}
	// pollHTTP carries the polling clients: one long-poll GET and one POST at
	// a time per client, connections kept alive.
	pollHTTP = &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 100000,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
)

// client is one Socket.IO connection to namespace "/".
type client struct {
	transport string

	// websocket
	ws  *websocket.Conn
	wmu sync.Mutex // gorilla allows one writer at a time
	buf []byte     // the last frame read; reused

	// polling
	pollURL string     // with sid
	pmu     sync.Mutex // one POST at a time (Engine.IO refuses overlapping ones)
	payload []byte     // the last GET's body; reused
	rest    []byte     // packets of payload not handed out yet
	body    bytes.Buffer

	closeOnce sync.Once
	closed    chan struct{}
}

// dialOptions say where and how to connect.
type dialOptions struct {
	baseURL   string // http://host:port
	path      string // "/socket.io/"
	transport string // "websocket" or "polling"
	auth      []byte // CONNECT payload (a JSON object) or nil
	// local is the source address (e.g. 127.0.0.2) of WebSocket
	// connections; nil: the system's choice. Each loopback source
	// address has its own ~28,000 ephemeral ports (socketbench scale).
	local net.IP
}

// dial opens an Engine.IO session and connects to namespace "/": it returns
// once the server's CONNECT reply arrived, or with the CONNECT_ERROR's text.
func dial(ctx context.Context, o dialOptions) (*client, error) {
	c := &client{transport: o.transport, closed: make(chan struct{})}
	q := "?EIO=4&transport=" + o.transport
	switch o.transport {
	case "websocket":
		u := "ws" + strings.TrimPrefix(o.baseURL, "http") + o.path + q
		d := wsDialer
		if o.local != nil {
			dc := *wsDialer
			dc.NetDialContext = (&net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: o.local},
				Control: bindNoPort}).DialContext
			d = &dc
		}
		ws, resp, err := d.DialContext(ctx, u, nil)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			return nil, err
		}
		c.ws = ws
		c.buf = make([]byte, 256)
		defer c.watch(ctx)()
		p, err := c.nextEIO()
		if err != nil {
			c.close()
			return nil, err
		}
		if len(p) == 0 || p[0] != '0' {
			c.close()
			return nil, fmt.Errorf("expected an open packet, got %.40q", p)
		}
	case "polling":
		req, _ := http.NewRequestWithContext(ctx, "GET", o.baseURL+o.path+q, nil)
		body, err := c.roundTrip(req)
		if err != nil {
			return nil, err
		}
		if len(body) == 0 || body[0] != '0' {
			return nil, fmt.Errorf("expected an open packet, got %.40q", body)
		}
		sid := jsonString(body, `"sid":"`)
		if sid == "" {
			return nil, fmt.Errorf("no sid in the open packet %.80q", body)
		}
		c.pollURL = o.baseURL + o.path + q + "&sid=" + url.QueryEscape(sid)
	default:
		return nil, fmt.Errorf("unknown transport %q", o.transport)
	}

	connect := append([]byte("40"), o.auth...)
	if err := c.sendCtx(ctx, connect); err != nil {
		c.close()
		return nil, err
	}
	for {
		p, err := c.nextCtx(ctx)
		if err != nil {
			c.close()
			return nil, err
		}
		switch {
		case bytes.HasPrefix(p, []byte("0")): // CONNECT reply: 0{"sid":...}
			return c, nil
		case bytes.HasPrefix(p, []byte("4")): // CONNECT_ERROR
			c.close()
			msg := jsonString(p, `"message":"`)
			if msg == "" {
				msg = string(p)
			}
			return nil, fmt.Errorf("connect refused: %s", msg)
		}
	}
}

// next returns the next Socket.IO packet (the data of an Engine.IO message,
// e.g. `2["ev",...]`), answering pings on the way. The slice is valid until
// the next call.
func (c *client) next() ([]byte, error) {
	return c.nextCtx(context.Background())
}

func (c *client) nextCtx(ctx context.Context) ([]byte, error) {
	for {
		p, err := c.nextEIOCtx(ctx)
		if err != nil {
			return nil, err
		}
		if len(p) == 0 {
			continue
		}
		switch p[0] {
		case '4':
			return p[1:], nil
		case '2': // ping: answer with a pong carrying the same data
			pong := pongPacket
			if len(p) > 1 {
				pong = append([]byte{'3'}, p[1:]...)
			}
			if err := c.sendCtx(ctx, pong); err != nil {
				return nil, err
			}
		case '1':
			return nil, errClosed
		}
	}
}

var pongPacket = []byte("3")

func (c *client) nextEIO() ([]byte, error) { return c.nextEIOCtx(context.Background()) }

// nextEIOCtx returns the next Engine.IO packet.
func (c *client) nextEIOCtx(ctx context.Context) ([]byte, error) {
	if c.ws != nil {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return nil, err
		}
		n := 0
		for {
			if n == len(c.buf) {
				c.buf = append(c.buf, make([]byte, len(c.buf))...)
			}
			m, err := r.Read(c.buf[n:])
			n += m
			if err == io.EOF {
				return c.buf[:n], nil
			}
			if err != nil {
				return nil, err
			}
		}
	}
	for len(c.rest) == 0 {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.pollURL, nil)
		body, err := c.roundTrip(req)
		if err != nil {
			return nil, err
		}
		c.payload = append(c.payload[:0], body...)
		c.rest = c.payload
	}
	p := c.rest
	if i := bytes.IndexByte(p, 0x1e); i >= 0 {
		p, c.rest = p[:i], p[i+1:]
	} else {
		c.rest = nil
	}
	return p, nil
}

// send writes one Engine.IO packet (type digit included).
func (c *client) send(p []byte) error { return c.sendCtx(context.Background(), p) }

func (c *client) sendCtx(ctx context.Context, p []byte) error {
	if c.ws != nil {
		c.wmu.Lock()
		err := c.ws.WriteMessage(websocket.TextMessage, p)
		c.wmu.Unlock()
		return err
	}
	c.pmu.Lock()
	defer c.pmu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, "POST", c.pollURL, bytes.NewReader(p))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	resp, err := pollHTTP.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST: %s", resp.Status)
	}
	return nil
}

// roundTrip does one polling GET and returns its body (valid until the next
// roundTrip of this client).
func (c *client) roundTrip(req *http.Request) ([]byte, error) {
	resp, err := pollHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	c.body.Reset()
	if _, err := c.body.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusBadRequest {
			return nil, errClosed // unknown or closed session
		}
		return nil, fmt.Errorf("GET: %s: %.80s", resp.Status, c.body.Bytes())
	}
	return c.body.Bytes(), nil
}

// watch makes WebSocket reads give up when ctx ends, until the returned
// function is called (polling requests carry ctx themselves).
func (c *client) watch(ctx context.Context) func() {
	if c.ws == nil {
		return func() {}
	}
	if d, ok := ctx.Deadline(); ok {
		_ = c.ws.SetReadDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.ws.SetReadDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		_ = c.ws.SetReadDeadline(time.Time{})
	}
}

// joinRoom sends join(room) with an ack id and waits for the ack.
func (c *client) joinRoom(ctx context.Context, room string) error {
	defer c.watch(ctx)()
	if err := c.sendCtx(ctx, []byte(`421["join",`+quote(room)+`]`)); err != nil {
		return err
	}
	for {
		p, err := c.nextCtx(ctx)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(p, []byte("31[")) {
			if !bytes.Contains(p, []byte(`"ok":true`)) {
				return fmt.Errorf("join refused: %s", p)
			}
			return nil
		}
	}
}

// close ends the connection (no close handshake: the TCP connection goes).
func (c *client) close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		if c.ws != nil {
			_ = c.ws.Close()
			return
		}
		if c.pollURL != "" {
			// Engine.IO close packet; the pending long-poll GET then ends.
			go func() { _ = c.send([]byte("1")) }()
		}
	})
}

// jsonString returns the JSON string value following key (which includes
// the opening quote of the value), unescaped only for the common case.
func jsonString(p []byte, key string) string {
	i := bytes.Index(p, []byte(key))
	if i < 0 {
		return ""
	}
	p = p[i+len(key):]
	j := bytes.IndexByte(p, '"')
	if j < 0 {
		return ""
	}
	return string(p[:j])
}

// quote is a JSON string for plain room names.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT on a socket bound to a source
// address before it connects: the port is then chosen at connect, unique
// per destination, instead of at bind, where the kernel searches the
// whole range for a port free of every bound socket (slower and slower
// past ~15,000 connections from one address).
func bindNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h); only
// source-addressed connections (socketbench scale, Linux: it reads /proc)
// set it.
const ipBindAddressNoPort = 24
