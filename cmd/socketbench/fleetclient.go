package main

// The client side of socketbench fleet: a WebSocket Socket.IO client that
// does what the official client does for connection state recovery
// (/work/shared/protocol.md section 7): it remembers the pid of its
// CONNECT reply and the offset (the last argument, a string) of each
// event; after a drop it reconnects with CONNECT auth {pid, offset}; the
// session is recovered when the reply carries the same pid (and sid).
// Missed packets arrive before the CONNECT reply and count as received.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fleetClient is one simulated user: one connection at a time, in one room.
type fleetClient struct {
	id   int
	room int

	// Owned by the client's goroutine.
	pid, sid, offset string
	ackID            int

	mu          sync.Mutex // guards the fields below (read by the straggler wait and the report)
	led         *fleetLedger
	first       int // first seq accountable for; -1 until the first join's ack
	sessions    int // successful connections
	reconnects  int // connections after the first
	recovered   int // reconnects whose reply carried the previous pid
	sidChanged  int // of those, with a sid other than the old one
	connFails   int // attempts that did not reach a CONNECT reply (or join ack)
	joins       int // join acks (first join and rejoins of fresh sessions)
	noOffset    int // msg events without an offset while the session has a pid
	replayed    int // msg events before a CONNECT reply (the missed packets of a recovery)
	dupReplay   int // duplicates that came among those (a copy of something already received)
	staleReplay int // replayed packets whose offset is not after the one the client sent
	firstErr    string
	// lastRecovered is when its latest recovered reconnect got its reply.
	lastRecovered time.Time

	connected atomic.Bool
}

// fleetMsg is the argument of the "msg" events the publisher emits.
type fleetMsg struct {
	Room string `json:"room"`
	Seq  *int   `json:"seq"`
}

func fleetRoomName(i int) string { return "r" + strconv.Itoa(i) }

// fleetConnectAuth is the CONNECT payload of a reconnect: {pid, offset},
// offset omitted when no event carried one; nil before the first session.
func fleetConnectAuth(pid, offset string) []byte {
	if pid == "" {
		return nil
	}
	b := []byte(`{"pid":` + quote(pid))
	if offset != "" {
		b = append(b, `,"offset":`+quote(offset)...)
	}
	return append(b, '}')
}

// fleetOffset returns the offset an event carries as the official client
// reads it: the last element of the event array ([name, ...args]) when it
// is a string.
func fleetOffset(arr []json.RawMessage) (string, bool) {
	if len(arr) == 0 {
		return "", false
	}
	last := bytes.TrimSpace(arr[len(arr)-1])
	if len(last) == 0 || last[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(last, &s) != nil {
		return "", false
	}
	return s, true
}

// fleetOffsetAfter reports whether offset a comes after b, both Redis
// stream ids ("<ms>-<seq>") or plain numbers; when either is neither, only
// equality is told (a == b is not after).
func fleetOffsetAfter(a, b string) bool {
	pa, oka := fleetParseOffset(a)
	pb, okb := fleetParseOffset(b)
	if !oka || !okb {
		return a != b
	}
	return pa[0] > pb[0] || (pa[0] == pb[0] && pa[1] > pb[1])
}

func fleetParseOffset(s string) ([2]uint64, bool) {
	hi, lo, dash := strings.Cut(s, "-")
	var o [2]uint64
	var err error
	if o[0], err = strconv.ParseUint(hi, 10, 64); err != nil {
		return o, false
	}
	if dash {
		if o[1], err = strconv.ParseUint(lo, 10, 64); err != nil {
			return o, false
		}
	}
	return o, true
}

// fleetEvent parses the data of an EVENT packet without ack id (`2[...]`,
// the leading '2' included): the event array, and the seq and room of a
// "msg" (seq -1 otherwise).
func fleetEvent(p []byte) (arr []json.RawMessage, seq int, room string, err error) {
	if len(p) < 2 || p[0] != '2' || p[1] != '[' {
		return nil, -1, "", fmt.Errorf("not an event without ack id: %.60q", p)
	}
	if err := json.Unmarshal(p[1:], &arr); err != nil {
		return nil, -1, "", err
	}
	seq = -1
	if len(arr) >= 2 && string(arr[0]) == `"msg"` {
		var m fleetMsg
		if json.Unmarshal(arr[1], &m) == nil && m.Seq != nil {
			seq, room = *m.Seq, m.Room
		}
	}
	return arr, seq, room, nil
}

// fleetReply parses the data of a CONNECT reply (`0{"sid":..,"pid":..}`).
func fleetReply(p []byte) (sid, pid string) {
	var r struct {
		SID string `json:"sid"`
		PID string `json:"pid"`
	}
	_ = json.Unmarshal(p[1:], &r)
	return r.SID, r.PID
}

// fleetConnect opens a WebSocket session at baseURL and connects to "/"
// with auth: it returns the client, the CONNECT reply's data and the
// packets that came before it (copied).
func fleetConnect(ctx context.Context, baseURL string, auth []byte) (*client, []byte, [][]byte, error) {
	u := "ws" + strings.TrimPrefix(baseURL, "http") + "/socket.io/?EIO=4&transport=websocket"
	ws, resp, err := wsDialer.DialContext(ctx, u, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, nil, nil, err
	}
	c := &client{transport: "websocket", ws: ws, buf: make([]byte, 256), closed: make(chan struct{})}
	stop := c.watch(ctx)
	defer stop()
	p, err := c.nextEIO()
	if err != nil {
		c.close()
		return nil, nil, nil, err
	}
	if len(p) == 0 || p[0] != '0' {
		c.close()
		return nil, nil, nil, fmt.Errorf("expected an open packet, got %.40q", p)
	}
	if err := c.sendCtx(ctx, append([]byte("40"), auth...)); err != nil {
		c.close()
		return nil, nil, nil, err
	}
	var before [][]byte
	for {
		p, err := c.nextCtx(ctx)
		if err != nil {
			c.close()
			return nil, nil, nil, err
		}
		switch {
		case len(p) == 0:
		case p[0] == '0':
			return c, append([]byte(nil), p...), before, nil
		case p[0] == '4':
			c.close()
			return nil, nil, nil, fmt.Errorf("connect refused: %s", p)
		default:
			before = append(before, append([]byte(nil), p...))
		}
	}
}

// fleetSession is what the client loop needs from the run.
type fleetSession interface {
	pickURL(clientID, attempt int) string
	joinedAt() int // the publisher's count now: the first seq a join acked now is accountable for
}

// run connects, joins, receives and reconnects until ctx ends.
func (fc *fleetClient) run(ctx context.Context, s fleetSession, connectSem chan struct{}) {
	attempt := fc.id
	fails := 0
	for ctx.Err() == nil {
		if fc.sessions > 0 || fails > 0 {
			// Backoff: 100-500 ms after a drop, longer after failures.
			d := time.Duration(100+rand.IntN(401)) * time.Millisecond
			d += time.Duration(min(fails, 10)) * 200 * time.Millisecond
			if !sleepCtx(ctx, d) {
				return
			}
		}
		url := s.pickURL(fc.id, attempt)
		attempt++
		select {
		case connectSem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		err := fc.session(ctx, s, url, func() { <-connectSem })
		if err != nil && ctx.Err() == nil {
			fails++
		} else {
			fails = 0
		}
	}
}

var errJoinRefused = errors.New("join refused")

// session is one connection: connect (with the recovery auth after the
// first), take the missed packets, join when the session is fresh, then
// receive until the connection ends. It returns an error when it never
// got to receiving.
func (fc *fleetClient) session(ctx context.Context, s fleetSession, url string, connected func()) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cl, reply, before, err := fleetConnect(dctx, url, fleetConnectAuth(fc.pid, fc.offset))
	cancel()
	released := false
	release := func() {
		if !released {
			released = true
			connected()
		}
	}
	defer release()
	if err != nil {
		if ctx.Err() == nil {
			fc.fail(err)
		}
		return err
	}
	defer cl.close()
	authOffset := fc.offset
	sid, pid := fleetReply(reply)
	prevPID, prevSID := fc.pid, fc.sid
	recovered := prevPID != "" && pid != "" && pid == prevPID
	fc.pid, fc.sid = pid, sid
	if !recovered {
		fc.offset = "" // a new session: offsets of the old one mean nothing
	}
	fc.mu.Lock()
	fc.sessions++
	if fc.sessions > 1 {
		fc.reconnects++
		if recovered {
			fc.recovered++
			fc.lastRecovered = time.Now()
			if sid != prevSID {
				fc.sidChanged++
			}
		}
	}
	fc.mu.Unlock()
	fc.connected.Store(true)
	defer fc.connected.Store(false)
	for _, p := range before {
		fc.handle(p, true)
		if arr, _, _, err := fleetEvent(p); err == nil && authOffset != "" {
			if off, ok := fleetOffset(arr); ok && !fleetOffsetAfter(off, authOffset) {
				fc.mu.Lock()
				fc.staleReplay++
				fc.mu.Unlock()
			}
		}
	}
	if len(before) > 0 {
		fc.mu.Lock()
		fc.replayed += len(before)
		fc.mu.Unlock()
	}
	// A fresh session (the first, or one not recovered) joins the room.
	joinAck := -1
	if !recovered {
		fc.ackID++
		joinAck = fc.ackID
		msg := `42` + strconv.Itoa(joinAck) + `["join",` + quote(fleetRoomName(fc.room)) + `]`
		if err := cl.send([]byte(msg)); err != nil {
			fc.fail(err)
			return err
		}
	}
	stop := cl.watch(ctx)
	defer stop()
	// A join not acked within 10 s: the session is given up.
	var joinTimer *time.Timer
	if joinAck >= 0 {
		joinTimer = time.AfterFunc(10*time.Second, cl.close)
		defer joinTimer.Stop()
	} else {
		release()
	}
	for {
		p, err := cl.next()
		if err != nil {
			if joinAck >= 0 && ctx.Err() == nil {
				err = fmt.Errorf("before the join's ack: %w", err)
				fc.fail(err)
				return err
			}
			return nil
		}
		if len(p) > 0 && p[0] == '1' { // DISCONNECT by the server
			if joinAck >= 0 {
				return errors.New("disconnected before the join's ack")
			}
			return nil
		}
		if joinAck >= 0 && len(p) > 0 && p[0] == '3' && bytes.HasPrefix(p[1:], []byte(strconv.Itoa(joinAck)+"[")) {
			joinTimer.Stop()
			if !bytes.Contains(p, []byte(`"ok":true`)) {
				fc.fail(fmt.Errorf("%w: %s", errJoinRefused, p))
				return errJoinRefused
			}
			fc.mu.Lock()
			fc.joins++
			if fc.first < 0 {
				fc.first = s.joinedAt()
			}
			fc.mu.Unlock()
			joinAck = -1
			release()
			continue
		}
		fc.handle(p, false)
	}
}

// handle takes one Socket.IO packet received while connected (or before
// the CONNECT reply, replay): an event's offset, and a msg's seq.
func (fc *fleetClient) handle(p []byte, replay bool) {
	if len(p) < 2 || p[0] != '2' || p[1] != '[' {
		return // acks, events with an ack id (none expected), others
	}
	arr, seq, _, err := fleetEvent(p)
	if err != nil {
		fc.fail(err)
		return
	}
	off, hasOff := fleetOffset(arr)
	if hasOff && fc.pid != "" {
		fc.offset = off
	}
	if seq >= 0 {
		fc.mu.Lock()
		dup := fc.led.dup
		fc.led.receive(seq)
		if replay && fc.led.dup > dup {
			fc.dupReplay++
		}
		if fc.pid != "" && !hasOff {
			fc.noOffset++
		}
		fc.mu.Unlock()
	}
}

func (fc *fleetClient) fail(err error) {
	fc.mu.Lock()
	fc.connFails++
	if fc.firstErr == "" {
		fc.firstErr = err.Error()
	}
	fc.mu.Unlock()
}
