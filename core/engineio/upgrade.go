package engineio

import (
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"github.com/socketfleet/socketfleet/core/protocol/eiowire"
)

// serveUpgrade runs the polling → WebSocket upgrade: probe, then '5'.
func (s *Session) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.transport != transportPolling || s.probing || s.closed {
		s.mu.Unlock()
		// Already upgraded or upgrading: like Node, accept the WebSocket
		// and close it at once; the session itself is unaffected.
		if ws, _, err := s.srv.upgrade(w, r, nil); err == nil {
			_ = ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(100*time.Millisecond))
			_ = ws.Close()
		}
		return
	}
	s.probing = true
	s.mu.Unlock()

	ws, rd, err := s.srv.upgrade(w, r, nil)
	if err != nil {
		s.mu.Lock()
		s.probing = false
		s.mu.Unlock()
		return
	}
	ws.SetReadLimit(s.srv.opts.MaxPayload)
	_ = ws.SetReadDeadline(time.Now().Add(s.srv.opts.UpgradeTimeout))
	fail := func() {
		_ = ws.Close()
		s.mu.Lock()
		s.probing, s.upgrading = false, false
		s.mu.Unlock()
	}
	for {
		kind, data, err := ws.ReadMessage()
		if err != nil || kind != websocket.TextMessage {
			fail()
			return
		}
		p, err := eiowire.DecodeText(data)
		if err != nil {
			fail()
			return
		}
		switch {
		case p.Type == eiowire.Ping && string(p.Data) == "probe":
			if err := ws.WriteMessage(websocket.TextMessage, msgProbe.Frame); err != nil {
				fail()
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
				fail()
				return
			}
			s.transport = transportWebSocket
			s.ws.attachLocked(s, ws, rd)
			s.upgrading, s.probing = false, false
			s.wakeGet()    // release a GET waiting for the upgrade's outcome
			s.kickLocked() // flush what polling had buffered
			s.mu.Unlock()
			_ = ws.SetReadDeadline(time.Time{})
			go s.ws.read() // a fresh, small stack, not the HTTP handler's
			return
		default:
			fail()
			return
		}
	}
}
