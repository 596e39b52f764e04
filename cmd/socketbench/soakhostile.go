package main

// The soak's hostile clients. Each attempt is bounded and returns
// whether the server cut it the way the README's limits table says.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

type hostileFn func(ctx context.Context, baseURL string) (cut bool, detail string)

// Each attempt is bounded by its bound. An idle TCP connection is closed
// by the request-head timeout (10 s, fixed in core/server), which at
// present runs twice: once in the WebSocket upgrade listener's peek, once
// more in net/http's ReadHeaderTimeout; about 20 s.
var hostileKinds = []struct {
	name  string
	bound time.Duration
	fn    hostileFn
}{
	{"nested-json", 15 * time.Second, hostileNested},
	{"invalid-utf8", 15 * time.Second, hostileUTF8},
	{"slow-post", 15 * time.Second, hostileSlowPost},
	{"idle-tcp", 30 * time.Second, hostileIdle},
	{"packet-flood", 15 * time.Second, hostileFlood},
	{"too-many-rooms", 15 * time.Second, hostileRooms},
}

// hostileLoop runs one kind of hostile client, one attempt at a time on
// the instances in turn, a second apart, until ctx ends.
func (r *soakRun) hostileLoop(ctx context.Context, name string, bound time.Duration, fn hostileFn) {
	r.hmu.Lock()
	hc := &hostileCount{}
	r.hostile[name] = hc
	r.hmu.Unlock()
	for i := 0; ctx.Err() == nil; i++ {
		actx, cancel := context.WithTimeout(ctx, bound)
		cut, detail := fn(actx, r.insts[i%len(r.insts)].url)
		aborted := ctx.Err() != nil
		cancel()
		if aborted {
			return // the run ended under it: not judged
		}
		r.hmu.Lock()
		hc.Attempts++
		if cut {
			hc.Cut++
		} else {
			hc.NotCut++
			hc.LastMiss = detail
		}
		r.hmu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// readUntil reads Socket.IO packets until match says yes or the connection
// ends; it returns the packet that matched or the read error.
func readUntil(ctx context.Context, cl *client, match func(p []byte) bool) ([]byte, error) {
	defer cl.watch(ctx)()
	for {
		p, err := cl.next()
		if err != nil {
			return nil, err
		}
		if match(p) {
			return append([]byte(nil), p...), nil
		}
	}
}

// hostileNested: an event whose argument nests 200 levels deep. Cut: the
// event is refused (ack "invalid event data"); the connection stays.
func hostileNested(ctx context.Context, base string) (bool, string) {
	cl, err := dial(ctx, dialOptions{baseURL: base, path: "/socket.io/", transport: "websocket"})
	if err != nil {
		return false, "dial: " + err.Error()
	}
	defer cl.close()
	deep := strings.Repeat("[", 200) + `"x"` + strings.Repeat("]", 200)
	if err := cl.send([]byte(`427["join",` + deep + `]`)); err != nil {
		return false, "send: " + err.Error()
	}
	p, err := readUntil(ctx, cl, func(p []byte) bool { return bytes.HasPrefix(p, []byte("37[")) })
	if err != nil {
		return false, "no ack: " + err.Error()
	}
	if bytes.Contains(p, []byte("invalid event data")) {
		return true, ""
	}
	return false, fmt.Sprintf("ack %.80s", p)
}

// hostileUTF8: a text frame that is not UTF-8. Cut: closed with 1007.
func hostileUTF8(ctx context.Context, base string) (bool, string) {
	cl, err := dial(ctx, dialOptions{baseURL: base, path: "/socket.io/", transport: "websocket"})
	if err != nil {
		return false, "dial: " + err.Error()
	}
	defer cl.close()
	cl.wmu.Lock()
	err = cl.ws.WriteMessage(websocket.TextMessage, []byte("42[\"x\",\"\xff\xfe\"]"))
	cl.wmu.Unlock()
	if err != nil {
		return false, "send: " + err.Error()
	}
	_, err = readUntil(ctx, cl, func([]byte) bool { return false })
	if websocket.IsCloseError(err, websocket.CloseInvalidFramePayloadData) {
		return true, ""
	}
	return false, fmt.Sprintf("ended with %v", err)
}

// hostileSlowPost: a polling POST that declares 1 MB and sends 100 bytes.
// Cut: 408 within body_timeout.
func hostileSlowPost(ctx context.Context, base string) (bool, string) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/socket.io/?EIO=4&transport=polling", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, "handshake: " + err.Error()
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sid := jsonString(body, `"sid":"`)
	if sid == "" {
		return false, fmt.Sprintf("no sid in %.80q", body)
	}
	u, _ := url.Parse(base)
	var d net.Dialer
	cn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return false, "dial: " + err.Error()
	}
	defer cn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = cn.SetDeadline(dl)
	}
	head := "POST /socket.io/?EIO=4&transport=polling&sid=" + url.QueryEscape(sid) + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: 1000000\r\n\r\n"
	if _, err := cn.Write(append([]byte(head), bytes.Repeat([]byte("x"), 100)...)); err != nil {
		return false, "write: " + err.Error()
	}
	res, err := http.ReadResponse(bufio.NewReader(cn), nil)
	if err != nil {
		return false, "no response: " + err.Error()
	}
	res.Body.Close()
	if res.StatusCode == http.StatusRequestTimeout {
		return true, ""
	}
	return false, "status " + res.Status
}

// idleCutAfter is how long the last idle connection lasted (ns).
var idleCutAfter atomic.Int64

// hostileIdle: a TCP connection that sends nothing. Cut: the server closes
// it (idle_timeout) before the attempt's deadline.
func hostileIdle(ctx context.Context, base string) (bool, string) {
	u, _ := url.Parse(base)
	var d net.Dialer
	cn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return false, "dial: " + err.Error()
	}
	defer cn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = cn.SetDeadline(dl)
	}
	t0 := time.Now()
	_, err = cn.Read(make([]byte, 512))
	idleCutAfter.Store(int64(time.Since(t0)))
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || (err != nil && strings.Contains(err.Error(), "reset")) {
		return true, ""
	}
	return false, fmt.Sprintf("read: %v", err)
}

// hostileFlood: one socket sends 2,000 events as fast as it can. Cut: the
// connection is closed (packet_rate) before the attempt's deadline.
func hostileFlood(ctx context.Context, base string) (bool, string) {
	cl, err := dial(ctx, dialOptions{baseURL: base, path: "/socket.io/", transport: "websocket"})
	if err != nil {
		return false, "dial: " + err.Error()
	}
	defer cl.close()
	done := make(chan error, 1)
	go func() {
		_, err := readUntil(ctx, cl, func([]byte) bool { return false })
		done <- err
	}()
	pkt := []byte(`42["noise",1]`)
	for i := 0; i < 2000; i++ {
		if err := cl.send(pkt); err != nil {
			break // closed under us: the cut
		}
	}
	err = <-done
	if ctx.Err() != nil {
		return false, "still open at the deadline"
	}
	if err != nil {
		return true, ""
	}
	return false, "?"
}

// hostileRooms: joins of 30 rooms, past max_rooms (20 in bench/soak.hcl).
// Cut: a join is refused with "too many rooms".
func hostileRooms(ctx context.Context, base string) (bool, string) {
	cl, err := dial(ctx, dialOptions{baseURL: base, path: "/socket.io/", transport: "websocket"})
	if err != nil {
		return false, "dial: " + err.Error()
	}
	defer cl.close()
	for i := 0; i < 30; i++ {
		if err := cl.send([]byte(fmt.Sprintf(`42%d["join","hostile-%d"]`, i, i))); err != nil {
			return false, "send: " + err.Error()
		}
		p, err := readUntil(ctx, cl, func(p []byte) bool { return bytes.HasPrefix(p, []byte(fmt.Sprintf("3%d[", i))) })
		if err != nil {
			return false, "no ack: " + err.Error()
		}
		if bytes.Contains(p, []byte("too many rooms")) {
			return true, ""
		}
	}
	return false, "30 joins accepted"
}
