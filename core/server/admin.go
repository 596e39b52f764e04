package server

import (
	"context"
	"net/http"

	"github.com/socketfleet/socketfleet/core/admin"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/core/socketio"
)

// The Socket.IO Admin UI (config.hcl's admin block): core/admin speaks
// its protocol; here it is wired into the instance.

// newAdmin makes the admin side when the config has an admin block.
func (s *Server) newAdmin() {
	ac := s.cfg.Admin
	if ac == nil {
		return
	}
	s.admin = admin.New(s.SocketIO, admin.Options{Config: ac, ServerID: s.cfg.Server.InstanceID,
		Log: s.log.WithField("component", "admin")})
}

// namespace is what a declared namespace is added with: in the admin's
// development mode, a handler and index that report to the admin sockets.
func (s *Server) namespace(name string, h socketio.Handler) (socketio.Handler, rooms.Index) {
	if s.admin == nil {
		return h, nil
	}
	return s.admin.Wrap(name, h, s.SocketIO.MaxRooms())
}

// attachAdmin declares /admin (after the others: it lists them) and serves
// the UI's files. Call it after the engine is made, before the cluster link
// is attached (the adapter learns the namespaces then).
func (s *Server) attachAdmin(mux *http.ServeMux) {
	if s.admin == nil {
		return
	}
	s.admin.Attach(s.Engine)
	if !s.cfg.Admin.UI {
		return
	}
	h, err := admin.UIHandler(s.cfg.Admin.UIDir, s.cfg.Server.Path)
	if err != nil {
		s.log.WithError(err).Error("admin UI not served")
		h = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "the admin UI's folder (admin.ui_dir) has no index.html: see the server's log", http.StatusServiceUnavailable)
		})
	}
	mux.Handle(admin.UIPrefix, h)
	mux.Handle("/admin", http.RedirectHandler(admin.UIPrefix, http.StatusMovedPermanently))
}

// runAdmin sends server_stats until ctx ends.
func (s *Server) runAdmin(ctx context.Context) {
	if s.admin != nil {
		go s.admin.Run(ctx)
	}
}

// adminMetrics adds the admin's logins and actions to a metrics snapshot.
func (s *Server) adminMetrics(counter func(name, help string, v float64, kv ...string)) {
	a := s.admin
	if a == nil {
		return
	}
	const lh = "Admin UI logins, by result."
	counter("admin_logins_total", lh, float64(a.Stats.LoginsOK.Load()), "result", "ok")
	counter("admin_logins_total", lh, float64(a.Stats.SessionsResumed.Load()), "result", "session_resumed")
	counter("admin_logins_total", lh, float64(a.Stats.LoginsFailed.Load()), "result", "invalid_credentials")
	counter("admin_logins_total", lh, float64(a.Stats.LoginsBusy.Load()), "result", "busy")
	const ah = "Admin UI actions (emit, join, leave, _disconnect), by result (refused: read-only mode or invalid arguments)."
	for i, name := range admin.Actions {
		counter("admin_actions_total", ah, float64(a.Stats.Done[i].Load()), "action", name, "result", "done")
		counter("admin_actions_total", ah, float64(a.Stats.Refused[i].Load()), "action", name, "result", "refused")
	}
}
