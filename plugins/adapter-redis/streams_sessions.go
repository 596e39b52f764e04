package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/socketfleet/socketfleet/sdk"
)

// Connection state recovery on the streams mode, as Node's streams adapter
// persists and restores sessions: the session is the key
// <session_key_prefix><pid> holding base64(msgpack {sid, pid, rooms, data})
// (we add user and offset; Node ignores keys it does not know), and what a
// client missed is read back from the stream after its offset.

const (
	// restorePage and restorePages bound a restore's XRANGE reads (Node
	// stops after 100 calls).
	restorePage  = 1000
	restorePages = 100
	// restoreLookBack is how many entries up to the offset a restore reads
	// to learn what the client already got, so that a copy of one of
	// those after the offset is not replayed (streams_dedupe.go).
	restoreLookBack = 1000
	// refreshChunk is how many live sessions one PEXPIRE pipeline renews.
	refreshChunk = 1000
)

// sessions is the streams mode's part of recovery.
type sessions struct {
	mu      sync.Mutex
	maxDisc time.Duration     // 0 until EnableRecovery
	live    map[string]string // pid → key, of sockets connected here
	started bool
	wake    chan struct{} // the refresher re-reads maxDisc
	done    chan struct{}
	once    sync.Once
}

func (s *sessions) init() {
	s.live = map[string]string{}
	s.wake = make(chan struct{}, 1)
	s.done = make(chan struct{})
}

func (s *sessions) stop() { s.once.Do(func() { close(s.done) }) }

// enableRecovery remembers the session lifetime and starts delivering this
// instance's own broadcasts with their offsets. Calling it again only
// updates the lifetime.
func (st *streams) enableRecovery(ctx context.Context, cfg sdk.RecoveryConfig) error {
	if cfg.MaxDisconnection < time.Millisecond {
		return fmt.Errorf(`adapter "redis": max disconnection %v is too short`, cfg.MaxDisconnection)
	}
	s := &st.sess
	s.mu.Lock()
	s.maxDisc = cfg.MaxDisconnection
	start := !s.started
	s.started = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	if start {
		st.wg.Add(1)
		go st.refresh()
	}
	st.recovering.Store(true)
	st.resumeFrom(cfg.Resume)
	// Offsets of sessions need the streams' newest ids: learn them now if
	// Redis was away at startup (not fatal: the reader learns them later).
	_ = st.initCursors(ctx)
	return nil
}

func (st *streams) maxDisconnection() time.Duration {
	st.sess.mu.Lock()
	defer st.sess.mu.Unlock()
	return st.sess.maxDisc
}

// refreshEvery is how often live sessions are renewed: a third of their
// lifetime, at least a second.
func refreshEvery(maxDisc time.Duration) time.Duration { return max(maxDisc/3, time.Second) }

// refresh renews the live sessions' lifetime until the mode closes, so that
// they outlive this instance by MaxDisconnection and no more.
func (st *streams) refresh() {
	defer st.wg.Done()
	s := &st.sess
	for {
		t := time.NewTimer(refreshEvery(st.maxDisconnection()))
		select {
		case <-st.ctx.Done():
			t.Stop()
			return
		case <-s.done:
			t.Stop()
			return
		case <-s.wake:
			t.Stop()
			continue
		case <-t.C:
		}
		maxDisc := st.maxDisconnection()
		s.mu.Lock()
		keys := make([]string, 0, len(s.live))
		for _, k := range s.live {
			keys = append(keys, k)
		}
		s.mu.Unlock()
		for len(keys) > 0 {
			n := min(len(keys), refreshChunk)
			pipe := st.rdb.Pipeline()
			for _, k := range keys[:n] {
				pipe.PExpire(st.ctx, k, maxDisc)
			}
			ctx, cancel := context.WithTimeout(st.ctx, maxDisc)
			_, err := pipe.Exec(ctx)
			cancel()
			if err != nil {
				st.setDown("sessions", redisCause(err))
				break
			}
			st.setDown("sessions", nil)
			keys = keys[n:]
		}
	}
}

// encodeSession is a session's value: base64(msgpack {sid, pid, rooms,
// data, user, offset}).
func encodeSession(s *sdk.Session) (string, error) {
	data := rawJSON(s.Data)
	if len(data) == 0 {
		data = rawJSON("null")
	}
	rooms := s.Rooms
	if rooms == nil {
		rooms = []string{}
	}
	b, err := encodeValue(shObj("sid", s.ID, "pid", s.PID, "rooms", rooms, "data", data, "user", s.User, "offset", s.Offset), nil)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// decodeSession reads a session's value (Node's, or ours).
func decodeSession(value string) (*sdk.Session, error) {
	b, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, err
	}
	var s sdk.Session
	d := msgpack.NewDecoder(bytes.NewReader(b))
	err = decodeMap(d, func(k string) error {
		var err error
		switch k {
		case "sid":
			s.ID, err = decodeStringish(d)
		case "pid":
			s.PID, err = decodeStringish(d)
		case "rooms":
			s.Rooms, err = decodeStrings(d)
		case "user":
			s.User, err = decodeStringish(d)
		case "offset":
			s.Offset, err = decodeStringish(d)
		case "data":
			r := &reader{d: d}
			var raw []byte
			raw, err = r.value(nil)
			s.Data = buffersAsJSON(raw, r.attachments)
		default:
			err = d.Skip()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(s.Data) == 0 {
		s.Data = []byte("null")
	}
	return &s, nil
}

// saveSessions writes a batch of changes in one pipeline.
func (st *streams) saveSessions(ctx context.Context, changes []sdk.SessionChange) error {
	maxDisc := st.maxDisconnection()
	if maxDisc == 0 {
		return errors.New(`adapter "redis": recovery is not enabled`)
	}
	s := &st.sess
	pipe := st.rdb.Pipeline()
	var errs []error
	s.mu.Lock()
	for i := range changes {
		c := &changes[i]
		key := st.sessionPrefix + c.Session.PID
		switch c.State {
		case sdk.SessionLive, sdk.SessionSaved:
			sess := c.Session
			if sess.Offset == "" {
				sess.Offset = st.lastRead(sess.Namespace)
			}
			v, err := encodeSession(&sess)
			if err != nil {
				errs = append(errs, fmt.Errorf("session %d: %w", i, err))
				continue
			}
			pipe.Set(ctx, key, v, maxDisc)
			if c.State == sdk.SessionLive {
				s.live[c.Session.PID] = key
			} else {
				delete(s.live, c.Session.PID)
			}
		case sdk.SessionEnded:
			pipe.Del(ctx, key)
			delete(s.live, c.Session.PID)
		default:
			errs = append(errs, fmt.Errorf("session %d: unknown state %d", i, c.State))
		}
	}
	s.mu.Unlock()
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			errs = append(errs, fmt.Errorf("writing sessions: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf(`adapter "redis": %w`, errors.Join(errs...))
	}
	return nil
}

// restoreSession takes the session pid and what it missed after offset, as
// Node's restoreSession: GET and DEL in one transaction, the offset must
// still be in the stream, then the stream after it, page by page.
func (st *streams) restoreSession(ctx context.Context, namespace, pid, offset string) (*sdk.RestoredSession, error) {
	nsp := nspOrRoot(namespace)
	if offset != "" && !validOffset(offset) {
		return nil, sdk.ErrNoSession
	}
	key := st.sessionPrefix + pid
	stream := st.streamOf(nsp)
	tx := st.rdb.TxPipeline()
	get := tx.Get(ctx, key)
	tx.Del(ctx, key)
	if _, err := tx.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf(`adapter "redis": restoring session: %w`, err)
	}
	value, err := get.Result()
	if errors.Is(err, redis.Nil) {
		return nil, sdk.ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf(`adapter "redis": restoring session: %w`, err)
	}
	sess, err := decodeSession(value)
	if err != nil {
		return nil, fmt.Errorf("%w (session %s cannot be decoded: %v)", sdk.ErrNoSession, pid, err)
	}
	sess.Namespace = nsp
	if sess.PID == "" {
		sess.PID = pid
	}
	if offset == "" {
		offset = sess.Offset
	}
	if !validOffset(offset) {
		return nil, sdk.ErrNoSession
	}
	// The offset and the entries before it: the offset must still be in
	// the stream, and what the client got (up to restoreLookBack entries
	// back) tells copies after the offset from new messages.
	back, err := st.rdb.XRevRangeN(ctx, stream, offset, "-", restoreLookBack).Result()
	if err != nil {
		return nil, fmt.Errorf(`adapter "redis": restoring session: %w`, err)
	}
	if len(back) == 0 || back[0].ID != offset {
		return nil, sdk.ErrNoSession // trimmed away (or never there)
	}
	now := time.Now()
	seen := newDedupe().begin(stream)
	for i := len(back) - 1; i >= 0; i-- {
		seen.dup(back[i].Values[midField], now)
	}
	dropped := 0
	defer func() {
		if dropped > 0 {
			st.count1(func(m *metrics) { m.dupRestore.Add(uint64(dropped)) })
		}
	}()
	out := &sdk.RestoredSession{Session: *sess}
	for page := 0; page < restorePages; page++ {
		entries, err := st.rdb.XRangeN(ctx, stream, nextOffset(offset), "+", restorePage).Result()
		if err != nil {
			return nil, fmt.Errorf(`adapter "redis": restoring session: %w`, err)
		}
		for _, e := range entries {
			offset = e.ID
			mine := e.Values["nsp"] == nsp && e.Values["type"] == "3"
			if seen.dup(e.Values[midField], now) {
				if mine {
					dropped++
				}
				continue
			}
			if !mine {
				continue
			}
			w, ok, err := decodeStreamEntry(e.Values)
			if err != nil || !ok || w.Data.RequestID != nil || w.Data.Opts.Flags.Volatile {
				continue
			}
			if !includes(sess.Rooms, w.Data.Opts.Rooms, w.Data.Opts.Except) {
				continue
			}
			data, err := shPacketData(w.Data.Packet)
			if err != nil {
				continue
			}
			out.Missed = append(out.Missed, sdk.AdapterMessage{Namespace: nsp, Rooms: w.Data.Opts.Rooms,
				Except: w.Data.Opts.Except, Data: data, Attachments: w.attachments, Offset: e.ID})
		}
		if len(entries) < restorePage {
			break
		}
	}
	return out, nil
}

// resumeFrom starts each stream's reader at the oldest of the offsets the
// host last delivered for the namespaces it carries, when that is older
// than what the reader knows: a plugin that restarted then delivers what
// was added while it was down (the host drops what it had delivered).
func (st *streams) resumeFrom(resume map[string]string) {
	st.curMu.Lock()
	defer st.curMu.Unlock()
	for nsp, id := range resume {
		if _, ok := parseStreamID(id); !ok {
			continue
		}
		s := st.streamOf(nsp)
		if cur := st.cursor[s]; cur == "" || streamIDLess(id, cur) {
			st.cursor[s] = id
		}
	}
}

// parseStreamID reads "ms-seq".
func parseStreamID(id string) ([2]uint64, bool) {
	ms, seq, ok := strings.Cut(id, "-")
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return [2]uint64{}, false
	}
	return [2]uint64{a, b}, true
}

// streamIDLess orders stream ids as Redis does; an id that is not one
// sorts last.
func streamIDLess(a, b string) bool {
	x, ok1 := parseStreamID(a)
	y, ok2 := parseStreamID(b)
	switch {
	case !ok1:
		return false
	case !ok2:
		return true
	}
	return x[0] < y[0] || (x[0] == y[0] && x[1] < y[1])
}
