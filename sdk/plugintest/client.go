package plugintest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Client is a small Socket.IO v5 client over Engine.IO v4 HTTP
// long-polling, connected to the namespace "/". It is strict about the
// wire format: anything a conforming server would not send is an error. It
// does not speak WebSocket, binary attachments or acks; it is meant for
// smoke tests of a plugin behind the real server ("this token is accepted,
// that one refused with this message"), not for load. A Client is used by
// one goroutine at a time.
type Client struct {
	// ID is the socket id from the CONNECT reply.
	ID string
	// SID is the Engine.IO session id from the open packet.
	SID string
	// Timeout bounds each request, reads included; 5 s by default.
	Timeout time.Duration

	url     string // the session's polling URL
	http    *http.Client
	pending []string // Socket.IO packets received and not read yet
}

// ConnectError is the server's CONNECT_ERROR: the socket was refused.
type ConnectError struct {
	Message string          // what the client receives as err.message
	Data    json.RawMessage // err.data; nil when absent
}

func (e *ConnectError) Error() string {
	if e.Data != nil {
		return fmt.Sprintf("CONNECT_ERROR %q (data %s)", e.Message, e.Data)
	}
	return fmt.Sprintf("CONNECT_ERROR %q", e.Message)
}

// Event is an EVENT packet the server sent.
type Event struct {
	Name string
	Args []json.RawMessage // each argument as the server encoded it
}

// Dial opens an Engine.IO session with the server at addr ("host:port")
// and sends CONNECT to "/" with auth, the CONNECT payload: a JSON object,
// or "" for none. It returns the connected client, or a *ConnectError when
// the server refused the socket (the plugin's Message and ErrorData), or
// another error when the exchange broke the protocol.
func Dial(addr, auth string) (*Client, error) {
	if auth != "" && !isJSONObject([]byte(auth)) {
		return nil, fmt.Errorf("plugintest: CONNECT payload %q is not a JSON object", auth)
	}
	c := &Client{Timeout: 5 * time.Second, http: &http.Client{}}
	base := "http://" + addr + "/socket.io/?EIO=4&transport=polling"
	body, err := c.do(http.MethodGet, base, "")
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	// The open packet: 0{"sid":...,"upgrades":[...],"pingInterval":...,...}.
	var open struct {
		SID          string    `json:"sid"`
		Upgrades     *[]string `json:"upgrades"`
		PingInterval *int      `json:"pingInterval"`
		PingTimeout  *int      `json:"pingTimeout"`
		MaxPayload   *int      `json:"maxPayload"`
	}
	if !strings.HasPrefix(body, "0{") || json.Unmarshal([]byte(body[1:]), &open) != nil ||
		open.SID == "" || open.Upgrades == nil || open.PingInterval == nil || open.PingTimeout == nil || open.MaxPayload == nil {
		return nil, fmt.Errorf("handshake: want an open packet 0{\"sid\",\"upgrades\",\"pingInterval\",\"pingTimeout\",\"maxPayload\"}, got %q", body)
	}
	c.SID = open.SID
	c.url = base + "&sid=" + url.QueryEscape(open.SID)
	if err := c.send("40" + auth); err != nil {
		return nil, fmt.Errorf("CONNECT: %w", err)
	}
	p, err := c.next()
	if err != nil {
		return nil, fmt.Errorf("CONNECT reply: %w", err)
	}
	switch {
	case strings.HasPrefix(p, "0{"):
		var ok struct {
			SID string `json:"sid"`
		}
		if json.Unmarshal([]byte(p[1:]), &ok) != nil || ok.SID == "" {
			return nil, fmt.Errorf("CONNECT reply %q: want 0{\"sid\":\"...\"}", p)
		}
		c.ID = ok.SID
		return c, nil
	case strings.HasPrefix(p, "4{"):
		var ce struct {
			Message *string         `json:"message"`
			Data    json.RawMessage `json:"data"`
		}
		if json.Unmarshal([]byte(p[1:]), &ce) != nil || ce.Message == nil {
			return nil, fmt.Errorf("CONNECT_ERROR %q: want 4{\"message\":\"...\"[,\"data\":...]}", p)
		}
		c.Close()
		return nil, &ConnectError{Message: *ce.Message, Data: ce.Data}
	default:
		return nil, fmt.Errorf("CONNECT reply %q: want CONNECT (0{...}) or CONNECT_ERROR (4{...})", p)
	}
}

// Dial is Dial(s.Addr, auth).
func (s *Server) Dial(auth string) (*Client, error) { return Dial(s.Addr, auth) }

// Connect dials with auth (see Dial) and fails the test unless the socket
// is accepted. The client is closed when the test ends.
func (s *Server) Connect(t testing.TB, auth string) *Client {
	t.Helper()
	c, err := s.Dial(auth)
	if err != nil {
		t.Fatalf("plugintest: CONNECT with %s: want accepted, got %v", orNone(auth), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Refused dials with auth (see Dial) and fails the test unless the socket
// is refused with CONNECT_ERROR, which it returns.
func (s *Server) Refused(t testing.TB, auth string) *ConnectError {
	t.Helper()
	c, err := s.Dial(auth)
	var ce *ConnectError
	switch {
	case err == nil:
		c.Close()
		t.Fatalf("plugintest: CONNECT with %s: want refused, got accepted as socket %s", orNone(auth), c.ID)
	case !errors.As(err, &ce):
		t.Fatalf("plugintest: CONNECT with %s: want CONNECT_ERROR, got %v", orNone(auth), err)
	}
	return ce
}

func orNone(auth string) string {
	if auth == "" {
		return "no payload"
	}
	return auth
}

// Emit sends the event with args (each encoded with encoding/json).
func (c *Client) Emit(event string, args ...any) error {
	b, err := json.Marshal(append([]any{event}, args...))
	if err != nil {
		return fmt.Errorf("plugintest: emit %q: %w", event, err)
	}
	return c.send("42" + string(b))
}

// Read returns the next EVENT the server sent, waiting at most Timeout.
// A DISCONNECT, an ACK or a packet for another namespace is an error.
// (A read that times out leaves the session dead: the server closes a
// session whose pending poll is abandoned.)
func (c *Client) Read() (Event, error) {
	p, err := c.next()
	if err != nil {
		return Event{}, err
	}
	switch {
	case p == "1":
		return Event{}, errors.New("the server disconnected the socket (DISCONNECT)")
	case !strings.HasPrefix(p, "2"):
		return Event{}, fmt.Errorf("packet %q: want an EVENT (2[...])", p)
	}
	var arr []json.RawMessage
	if err := json.Unmarshal([]byte(p[1:]), &arr); err != nil || len(arr) == 0 {
		return Event{}, fmt.Errorf("EVENT %q: want a non-empty JSON array (an ack id is not expected)", p)
	}
	var name string
	if err := json.Unmarshal(arr[0], &name); err != nil {
		return Event{}, fmt.Errorf("EVENT %q: the name is not a string", p)
	}
	return Event{Name: name, Args: arr[1:]}, nil
}

// Close ends the Engine.IO session (a close packet); errors are ignored.
func (c *Client) Close() {
	if c.url != "" {
		_ = c.send("1")
		c.url = ""
	}
}

// next returns the next Socket.IO packet (without its Engine.IO type),
// polling when none is pending and answering pings on the way.
func (c *Client) next() (string, error) {
	deadline := time.Now().Add(c.Timeout)
	for len(c.pending) == 0 {
		if c.url == "" {
			return "", errors.New("the client is closed")
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("nothing from the server within %s", c.Timeout)
		}
		body, err := c.do(http.MethodGet, c.url, "")
		if err != nil {
			return "", err
		}
		for _, pkt := range strings.Split(body, "\x1e") {
			switch {
			case pkt == "2": // ping: the client must answer within pingTimeout
				if err := c.send("3"); err != nil {
					return "", fmt.Errorf("pong: %w", err)
				}
			case pkt == "6": // noop
			case pkt == "1":
				c.url = ""
				return "", errors.New("the server closed the session")
			case strings.HasPrefix(pkt, "4"):
				p := pkt[1:]
				if p == "" || strings.ContainsAny(p[:1], "56") {
					return "", fmt.Errorf("Socket.IO packet %q: this client takes no binary packets", p)
				}
				if len(p) > 1 && p[1] == '/' {
					return "", fmt.Errorf("Socket.IO packet %q: for a namespace this client did not connect", p)
				}
				c.pending = append(c.pending, p)
			case strings.HasPrefix(pkt, "b"):
				return "", fmt.Errorf("binary Engine.IO packet: this client takes none")
			default:
				return "", fmt.Errorf("Engine.IO packet %q in payload %q: not one a server sends over polling", pkt, body)
			}
		}
	}
	p := c.pending[0]
	c.pending = c.pending[1:]
	return p, nil
}

// send POSTs one Engine.IO packet; the server answers "ok".
func (c *Client) send(pkt string) error {
	if c.url == "" {
		return errors.New("the client is closed")
	}
	body, err := c.do(http.MethodPost, c.url, pkt)
	if err != nil {
		return err
	}
	if body != "ok" {
		return fmt.Errorf("POST %q: the server answered %q, want \"ok\"", pkt, body)
	}
	return nil
}

// do makes one polling request within Timeout and checks its status.
func (c *Client) do(method, u, body string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s: HTTP %d: %s", method, u, resp.StatusCode, bytes.TrimSpace(b))
	}
	if method == http.MethodGet && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		return "", fmt.Errorf("GET %s: Content-Type %q, want text/plain", u, resp.Header.Get("Content-Type"))
	}
	return string(b), nil
}
