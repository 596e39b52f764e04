package engineio

import (
	"net"
	"net/http"
	"time"

	"github.com/socketfleet/socketfleet/core/protocol/eiowire"
)

// serveUpgrade runs the polling → WebSocket upgrade: probe, then '5'.
func (s *Session) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.transport != transportPolling || s.probing || s.closed {
		s.mu.Unlock()
		// Already upgraded or upgrading: like Node, accept the WebSocket
		// and close it at once; the session itself is unaffected.
		if nc, err := s.srv.upgrade(w, r, nil); err == nil {
			writeClose(nc, closeNormal, 100*time.Millisecond)
			_ = nc.Close()
		}
		return
	}
	s.probing = true
	s.mu.Unlock()

	nc, err := s.srv.upgrade(w, r, nil)
	if err != nil {
		s.mu.Lock()
		s.probing = false
		s.mu.Unlock()
		return
	}
	// Nothing else writes to nc until it is attached: pongs and the probe
	// answer go out from here.
	_ = nc.SetReadDeadline(time.Now().Add(s.srv.opts.UpgradeTimeout))
	var rb readBuf // the session's once attached
	fail := func(code int) {
		// The session may probe again once the client sees this one end.
		s.mu.Lock()
		s.probing, s.upgrading = false, false
		s.mu.Unlock()
		rb.r, rb.w = 0, 0 // what is left unread goes with the connection
		rb.release()
		if code != 0 {
			writeClose(nc, code, 100*time.Millisecond)
		}
		_ = nc.Close()
	}
	onPing := func(p []byte) { _ = writeFrame(nc, newPong(p)) }
	for {
		op, data, err := readMessage(&rb, nc, s.srv.opts.MaxPayload, onPing)
		if err != nil {
			code := 0
			if we, ok := err.(*wsError); ok {
				code = we.code
			}
			fail(code)
			return
		}
		if op == opPing || op == opPong {
			continue
		}
		if op != opText {
			fail(0)
			return
		}
		p, err := eiowire.DecodeText(data)
		if err != nil {
			fail(0)
			return
		}
		switch {
		case p.Type == eiowire.Ping && string(p.Data) == "probe":
			if err := writeFrame(nc, msgProbe); err != nil {
				fail(0)
				return
			}
			s.mu.Lock()
			s.upgrading = true
			s.kickLocked() // a pending GET answers noop
			s.mu.Unlock()
		case p.Type == eiowire.Upgrade:
			s.mu.Lock()
			if !s.upgrading || s.closed {
				s.mu.Unlock()
				fail(0)
				return
			}
			s.transport = transportWebSocket
			s.ws.attachLocked(s, nc, rb)
			s.upgrading, s.probing = false, false
			s.wakeGet()    // release a GET waiting for the upgrade's outcome
			s.kickLocked() // flush what polling had buffered
			s.mu.Unlock()
			_ = nc.SetReadDeadline(time.Time{})
			go s.ws.read() // a fresh, small stack, not the HTTP handler's
			return
		default:
			fail(0)
			return
		}
	}
}

// writeFrame writes m's frame to a connection no writer holds yet (the
// probe), under writeWait.
func writeFrame(nc net.Conn, m *Message) error {
	_ = nc.SetWriteDeadline(time.Now().Add(writeWait))
	_, err := nc.Write(m.ws)
	_ = nc.SetWriteDeadline(time.Time{})
	return err
}
