package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestAbuseLeavesNoGoroutines opens 1,000 sessions, abuses each one in one of
// several ways (malformed packets, protocol violations, abrupt disconnects,
// oversized frames), and checks that the server is back to its baseline of
// goroutines and sessions afterwards, and still serves a normal client.
func TestAbuseLeavesNoGoroutines(t *testing.T) {
	srv, ts := newTestInstance(t, testConfig)
	base := ts.URL + "/socket.io/?EIO=4"
	wsBase := "ws" + strings.TrimPrefix(base, "http")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	get := func(url string) string {
		res, err := client.Get(url)
		if err != nil {
			return ""
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	post := func(url, body string) {
		res, err := client.Post(url, "text/plain", strings.NewReader(body))
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	pollSession := func() string {
		open := get(base + "&transport=polling")
		i := strings.Index(open, `"sid":"`)
		if i < 0 {
			return ""
		}
		return base + "&transport=polling&sid=" + open[i+7:i+27]
	}
	wsConn := func() *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial(wsBase+"&transport=websocket", nil)
		if err != nil {
			return nil
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, _ = c.ReadMessage() // open
		return c
	}
	abuses := []func(){
		func() { // garbage Engine.IO packet over WebSocket
			if c := wsConn(); c != nil {
				_ = c.WriteMessage(websocket.TextMessage, []byte("abc"))
				_, _, _ = c.ReadMessage()
				c.Close()
			}
		},
		func() { // malformed Socket.IO packets after connecting
			if c := wsConn(); c != nil {
				_ = c.WriteMessage(websocket.TextMessage, []byte("40"))
				_ = c.WriteMessage(websocket.TextMessage, []byte(`42{"not":"an array"}`))
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						break
					}
				}
				c.Close()
			}
		},
		func() { // binary frame with no pending packet, then vanish without a close frame
			if c := wsConn(); c != nil {
				_ = c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
				c.UnderlyingConn().Close()
			}
		},
		func() { // oversized frame
			if c := wsConn(); c != nil {
				_ = c.WriteMessage(websocket.TextMessage, []byte("4"+strings.Repeat("x", 1_100_000)))
				_, _, _ = c.ReadMessage()
				c.Close()
			}
		},
		func() { // half-sent binary event, then a text frame
			if c := wsConn(); c != nil {
				_ = c.WriteMessage(websocket.TextMessage, []byte("40"))
				_ = c.WriteMessage(websocket.TextMessage, []byte(`452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`))
				_ = c.WriteMessage(websocket.TextMessage, []byte(`42["message"]`))
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						break
					}
				}
				c.Close()
			}
		},
		func() { // polling: malformed payload
			if u := pollSession(); u != "" {
				post(u, "\x1e\x1e4")
			}
		},
		func() { // polling: event before CONNECT
			if u := pollSession(); u != "" {
				post(u, `42["message","x"]`)
			}
		},
		func() { // polling: pending GET aborted by the client
			if u := pollSession(); u != "" {
				c := &http.Client{Timeout: 50 * time.Millisecond, Transport: client.Transport}
				if res, err := c.Get(u); err == nil {
					res.Body.Close()
				}
			}
		},
		func() { // polling: connect then a client ping (wrong heartbeat direction)
			if u := pollSession(); u != "" {
				post(u, "40")
				post(u, "2")
			}
		},
		func() { // raw TCP: a WebSocket upgrade that never completes its first frame
			conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
			if err != nil {
				return
			}
			fmt.Fprintf(conn, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\xfe")
			time.Sleep(5 * time.Millisecond)
			conn.Close()
		},
	}

	runtime.GC()
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			abuses[i%len(abuses)]()
		}(i)
	}
	wg.Wait()
	// The test's own keep-alive connections (and the server goroutines
	// serving them) are not the server's leaks: close them first.
	client.CloseIdleConnections()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()

	// Sessions end by themselves (errors, ping timeout, connect timeout).
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if srv.Engine.Count() == 0 && runtime.NumGoroutine() <= baseline+2 {
			break
		}
		client.CloseIdleConnections()
		time.Sleep(100 * time.Millisecond)
	}
	if n := srv.Engine.Count(); n != 0 {
		t.Fatalf("%d sessions still open after abuse", n)
	}
	if n := runtime.NumGoroutine(); n > baseline+2 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("goroutines: %d after abuse, baseline %d\n%s", n, baseline, buf)
	}
	if c := srv.SocketIO.Stats.Connections.Load(); c != 0 {
		t.Fatalf("connection gauge %d after abuse", c)
	}

	// The server still works for a well-behaved client.
	c := dialWS(t, ts)
	c.send(`40`)
	c.read()
	c.read()
	c.send(`421["message-with-ack","ok"]`)
	if got := c.read(); got != `431["ok"]` {
		t.Fatalf("after abuse: %q", got)
	}
}
