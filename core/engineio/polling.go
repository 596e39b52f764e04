package engineio

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

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
		if s.clientClosed {
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
	// The body must arrive within BodyTimeout: a client that declares a
	// body and trickles it (or never sends it) must not hold a goroutine
	// for as long as it likes. Packets already sent in it are lost, so
	// the session cannot go on: it closes, and the client reconnects.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.srv.lim.Load().bodyTimeout))
	body, err := readBody(r.Body, r.ContentLength, max)
	_ = rc.SetReadDeadline(time.Time{})
	switch {
	case err == errTooLarge:
		http.Error(w, "Payload Too Large", http.StatusRequestEntityTooLarge)
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.srv.BodyTimeouts.Add(1)
		s.closeNow(ReasonTransportError)
		w.Header().Set("Connection", "close")
		http.Error(w, "Request Timeout", http.StatusRequestTimeout)
		return
	case err != nil:
		s.closeNow(ReasonTransportError)
		return
	case !utf8.Valid(body):
		// A polling payload is text (binary travels base64). Node decodes
		// it lossily (U+FFFD); we pass bytes through unchanged, so we
		// refuse instead, as a WebSocket frame is refused (1007 there).
		s.srv.InvalidUTF8.Add(1)
		s.closeNow(ReasonInvalidUTF8)
		s.srv.writeError(w, r, errBadRequest)
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

// readBody reads a body of at most max bytes. The buffer grows as bytes
// arrive: the declared length only sizes the first allocation, up to
// bodyChunk, so a request that declares a megabyte and sends 140 bytes
// costs 140 bytes, not a megabyte.
func readBody(body io.Reader, declared, limit int64) ([]byte, error) {
	size := min(max(declared, 0), bodyChunk) + 1 // +1: EOF without a regrow
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grows by the runtime's policy
		}
		n, err := body.Read(buf[len(buf):min(cap(buf), int(limit)+1)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// bodyChunk bounds the first allocation for a POST body (see readBody).
const bodyChunk = 512
