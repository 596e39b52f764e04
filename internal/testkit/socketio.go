package testkit

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// SocketIOURL is the WebSocket URL of the Socket.IO endpoint at addr
// ("host:port").
func SocketIOURL(addr string) string {
	return "ws://" + addr + "/socket.io/?EIO=4&transport=websocket"
}

// DialSocketIO opens a WebSocket session at url and connects it to "/": it
// reads the open packet (0{"sid":...), sends 40 and checks the reply
// (40{"sid":...). Each read waits at most timeout; the connection returned
// has no deadline.
func DialSocketIO(d *websocket.Dialer, url string, timeout time.Duration) (*websocket.Conn, error) {
	c, _, err := d.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	if _, open, err := c.ReadMessage(); err != nil || !bytes.HasPrefix(open, []byte(`0{"sid":"`)) {
		c.Close()
		return nil, fmt.Errorf("open packet %q: %v", open, err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		c.Close()
		return nil, err
	}
	if _, reply, err := c.ReadMessage(); err != nil || !bytes.HasPrefix(reply, []byte(`40{"sid":"`)) {
		c.Close()
		return nil, fmt.Errorf("CONNECT reply %q: %v", reply, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

// ConnectSocketIO is DialSocketIO to the server at addr with a 5 s limit,
// failing the test on error; the connection is closed when the test ends.
func ConnectSocketIO(t testing.TB, addr string) *websocket.Conn {
	t.Helper()
	c, err := DialSocketIO(websocket.DefaultDialer, SocketIOURL(addr), 5*time.Second)
	if err != nil {
		t.Fatalf("Socket.IO connect to %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ReadWS reads one WebSocket message, waiting at most 3 s, and fails the
// test on error.
func ReadWS(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}
