package engineio

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/socketfleet/socketfleet/core/protocol/eiowire"
)

// HTTP long-polling. A session's polling state is in the Session, under
// Session.mu: getActive and postActive (one GET and one POST at a time),
// and the queue, which a GET takes whole. Session.wake releases a waiting
// GET; it is buffered (1), so a wake-up is never lost, only sometimes
// stale: a woken GET looks again.

// startPolling starts a polling session (newSession made its wake).
func (s *Session) startPolling() { s.startHeartbeat() }

// wakeGet releases a GET waiting on s.wake, if any.
func (s *Session) wakeGet() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func writePollResponse(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// getStart is how a GET begins, decided under s.mu.
type getStart uint8

const (
	getServe     getStart = iota // the GET holds getActive
	getUpgrading                 // the GET holds getActive; the probe was answered
	getRefused                   // not a polling session: 400
	getTwice                     // a second GET at once: 400, and the session closes
)

func (s *Session) servePollGet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	start := s.startGetLocked()
	var batch []*Message
	var reply []byte
	done := false
	if start == getServe {
		batch, reply, done = s.nextGetLocked()
	}
	s.mu.Unlock()

	switch start {
	case getRefused:
		s.srv.writeError(w, r, errBadRequest)
		return
	case getTwice:
		s.srv.writeError(w, r, errBadRequest)
		s.closeNow(ReasonTransportError)
		return
	case getUpgrading:
		// A GET that arrives after the probe: the client is about to send
		// '5'. Give it a moment (Node answers such a GET within 100 ms), so
		// that a GET racing the upgrade gets the 400 it would get after it.
		s.awaitUpgrade()
		s.mu.Lock()
		upgraded := s.transport != transportPolling
		if upgraded {
			s.getActive = false
		} else {
			batch, reply, done = s.nextGetLocked()
		}
		s.mu.Unlock()
		if upgraded {
			s.srv.writeError(w, r, errBadRequest)
			return
		}
	}
	for !done {
		select {
		case <-s.wake:
		case <-r.Context().Done():
			// The client gave up on its pending GET: the session is gone.
			s.closeNow(ReasonTransportClose)
			return
		}
		s.mu.Lock()
		batch, reply, done = s.nextGetLocked()
		s.mu.Unlock()
	}
	if batch == nil {
		writePollResponse(w, reply)
		return
	}
	var body []byte
	sentClose := false
	for _, m := range batch {
		body = eiowire.AppendPayload(body, m.packet())
		sentClose = sentClose || m == msgClose
	}
	writePollResponse(w, body)
	s.mu.Lock()
	s.recycleLocked(batch)
	s.getActive = false
	s.mu.Unlock()
	if sentClose {
		s.closeNow(ReasonForcedClose)
	}
}

// startGetLocked claims the GET side of the session.
func (s *Session) startGetLocked() getStart {
	switch {
	case s.transport != transportPolling:
		return getRefused
	case s.getActive:
		return getTwice
	}
	s.getActive = true
	if s.upgrading {
		return getUpgrading
	}
	return getServe
}

// awaitUpgrade waits, up to 100 ms, while an upgrade is under way.
func (s *Session) awaitUpgrade() {
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		waiting := s.upgrading && !s.closed
		s.mu.Unlock()
		if !waiting {
			return
		}
		select {
		case <-s.wake: // possibly stale: look again
		case <-t.C:
			return
		}
	}
}

// nextGetLocked decides a GET's answer: a batch to send (the GET keeps
// getActive until it is recycled), a fixed reply (the GET has ended), or
// neither (done false: wait for s.wake).
func (s *Session) nextGetLocked() (batch []*Message, reply []byte, done bool) {
	switch {
	case s.upgrading:
		s.getActive = false
		return nil, msgNoop.Frame, true
	case len(s.queue) > 0:
		return s.takeLocked(), nil, true
	case s.closed:
		// The client's own close packet releases its GET with a noop;
		// any other end of the session is announced with close.
		reply = msgClose.Frame
		if s.reason == ReasonTransportClose {
			reply = msgNoop.Frame
		}
		s.getActive = false
		return nil, reply, true
	}
	return nil, nil, false
}

func (s *Session) servePollPost(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.transport != transportPolling || s.closed {
		s.mu.Unlock()
		s.srv.writeError(w, r, errBadRequest)
		return
	}
	if s.postActive {
		s.mu.Unlock()
		s.srv.writeError(w, r, errBadRequest)
		s.closeNow(ReasonTransportError)
		return
	}
	s.postActive = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.postActive = false
		s.mu.Unlock()
	}()

	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/octet-stream") {
		s.srv.writeError(w, r, errBadRequest)
		return
	}
	max := s.srv.opts.MaxPayload
	if r.ContentLength > max {
		http.Error(w, "Payload Too Large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := readBody(r, max)
	if err == errTooLarge {
		http.Error(w, "Payload Too Large", http.StatusRequestEntityTooLarge)
		return
	}
	if err != nil {
		s.closeNow(ReasonTransportError)
		return
	}
	if err := eiowire.DecodePayload(body, func(p eiowire.Packet) error {
		if !s.receive(p) {
			return errStop
		}
		return nil
	}); err != nil {
		if err != errStop {
			s.closeNow(ReasonParseError)
			s.srv.writeError(w, r, errBadRequest)
			return
		}
	}
	w.Header().Set("Content-Type", "text/html")
	_, _ = w.Write([]byte("ok"))
}

var (
	errTooLarge = errors.New("engineio: payload too large")
	errStop     = errors.New("engineio: session ended")
)

// readBody reads at most max bytes of the request body.
func readBody(r *http.Request, max int64) ([]byte, error) {
	size := r.ContentLength
	if size < 0 || size > max {
		size = 512
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	n, err := buf.ReadFrom(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}
