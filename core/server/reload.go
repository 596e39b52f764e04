package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/engineio"
	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/core/routing"
	"github.com/socketfleet/socketfleet/core/socketio"
	"github.com/socketfleet/socketfleet/sdk"
)

// A reload builds a whole new generation of the config (file parsed and
// checked, changed plugins launched and configured, routers built) while
// the old one serves, and swaps it in only when all of that succeeded;
// otherwise the new parts are stopped and the old generation goes on.

// reloader holds the generation an instance serves.
type reloader struct {
	mu       sync.Mutex // one reload at a time; guards handlers
	cur      atomic.Pointer[generation]
	handlers map[string]*liveRouter // by namespace

	logger *logrus.Logger     // whose level a reload sets; nil: left alone
	opts   pluginhost.Options // for the plugins a reload launches

	ok, failed atomic.Int64
	lastErr    atomic.Pointer[reloadFailure]
}

// generation is one loaded config file.
type generation struct {
	file   *config.Loaded
	loaded time.Time
	seq    int // 1: the config the instance started with
}

type reloadFailure struct {
	At      time.Time
	Message string
}

// liveRouter is a namespace's socketio.Handler: the router of the
// generation serving. A reload stores the new router; the next packet
// read uses it.
type liveRouter struct {
	r atomic.Pointer[routing.Router]
}

var (
	_ socketio.Handler            = (*liveRouter)(nil)
	_ socketio.ServerEventHandler = (*liveRouter)(nil)
)

func (h *liveRouter) Connect(s *socketio.Socket) error { return h.r.Load().Connect(s) }
func (h *liveRouter) Connected(s *socketio.Socket)     { h.r.Load().Connected(s) }
func (h *liveRouter) Event(s *socketio.Socket, e *socketio.Event) {
	h.r.Load().Event(s, e)
}
func (h *liveRouter) Disconnected(s *socketio.Socket, reason string) {
	h.r.Load().Disconnected(s, reason)
}
func (h *liveRouter) ServerEvent(ns *socketio.Namespace, name string, args, attachments [][]byte, ack func([]byte, [][]byte)) bool {
	return h.r.Load().ServerEvent(ns, name, args, attachments, ack)
}

// router wraps r for namespace name, remembering it for reloads.
func (rl *reloader) router(name string, r *routing.Router) *liveRouter {
	h := &liveRouter{}
	h.r.Store(r)
	rl.mu.Lock()
	if rl.handlers == nil {
		rl.handlers = map[string]*liveRouter{}
	}
	rl.handlers[name] = h
	rl.mu.Unlock()
	return h
}

// start records the generation the instance starts with.
func (rl *reloader) start(file *config.Loaded) {
	rl.cur.Store(&generation{file: file, loaded: time.Now(), seq: 1})
}

// config returns the config serving.
func (rl *reloader) config() *config.Config { return rl.cur.Load().file.Config }

// routingPlugins are what the routers of cfg consult.
func routingPlugins(cfg *config.Config, ps *plugins) routing.Plugins {
	var p routing.Plugins
	if ps != nil {
		p = ps.routing
	}
	if cfg.Server.API != nil {
		p.RedactAuth = cfg.Server.API.RedactAuth
	}
	if rec := cfg.Server.Recovery; rec != nil {
		p.SkipAuthOnRecovery = rec.SkipAuth
	}
	return p
}

// pluginKeys names each plugin block of file by what configures it: two
// blocks with the same key are served by the same process.
func pluginKeys(file *config.Loaded) []string {
	keys := make([]string, len(file.Plugins))
	for i, pb := range file.Plugins {
		keys[i] = fmt.Sprintf("%s\x00%s\x00%s\x00%s", pb.Kind, pb.ConfigDir, file.Config.Server.PluginDir, config.PluginSource(pb, file.Source))
	}
	return keys
}

// ReloadResult says what a successful reload changed.
type ReloadResult struct {
	Hash              string   `json:"hash"`
	PreviousHash      string   `json:"previous_hash"`
	Generation        int      `json:"generation"`
	NamespacesAdded   []string `json:"namespaces_added,omitempty"`
	NamespacesRemoved []string `json:"namespaces_removed,omitempty"`
	// SocketsDisconnected: the sockets of the removed namespaces.
	SocketsDisconnected int      `json:"sockets_disconnected"`
	PluginsStarted      []string `json:"plugins_started,omitempty"`
	PluginsStopped      []string `json:"plugins_stopped,omitempty"`
	PluginsKept         int      `json:"plugins_kept"`
	DurationMS          float64  `json:"duration_ms"`
}

// ReloadError is a refused reload: the diagnostics, with file:line:col.
type ReloadError struct{ Diags hcl.Diagnostics }

func (e *ReloadError) Error() string {
	var b bytes.Buffer
	for _, d := range e.Diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		b.WriteString(d.Summary)
		if d.Detail != "" {
			b.WriteString(": " + d.Detail)
		}
	}
	return "config reload refused, the running config goes on: " + b.String()
}

// Unwrap gives the diagnostics (errors.As(err, &hcl.Diagnostics{})).
func (e *ReloadError) Unwrap() error { return e.Diags }

// Reload reads the config file the instance runs from again and, if all
// of it can be applied, swaps it in; otherwise nothing changes and the
// error (a *ReloadError) says why. When it returns nil, every event read
// from then on runs the new rules. The TLS certificate files are read
// again too, whatever becomes of the config (a copy that kept the files'
// size and times goes unseen by the poll).
func (s *Server) Reload(ctx context.Context) (*ReloadResult, error) {
	rl := &s.reload
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if s.certs != nil {
		s.certs.check(true)
	}
	start := time.Now()
	cur := rl.cur.Load()
	res, diags := s.reloadLocked(ctx, cur, start)
	if diags.HasErrors() {
		err := &ReloadError{Diags: diags}
		rl.failed.Add(1)
		rl.lastErr.Store(&reloadFailure{At: time.Now(), Message: err.Error()})
		for _, d := range diags {
			if d.Severity != hcl.DiagError {
				continue
			}
			f := logrus.Fields{"detail": d.Detail}
			if d.Subject != nil {
				f["at"] = fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
			}
			s.log.WithFields(f).Error("config reload refused: " + d.Summary)
		}
		return nil, err
	}
	rl.ok.Add(1)
	rl.lastErr.Store(nil)
	res.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	s.log.WithFields(logrus.Fields{"previous_hash": res.PreviousHash, "generation": res.Generation,
		"namespaces_added": res.NamespacesAdded, "namespaces_removed": res.NamespacesRemoved,
		"sockets_disconnected": res.SocketsDisconnected, "plugins_started": res.PluginsStarted,
		"plugins_stopped": res.PluginsStopped, "plugins_kept": res.PluginsKept, "duration_ms": res.DurationMS}).
		Info("config reloaded")
	return res, nil
}

func (s *Server) reloadLocked(ctx context.Context, cur *generation, start time.Time) (*ReloadResult, hcl.Diagnostics) {
	rl := &s.reload
	next, diags := config.LoadFile(cur.file.Filename)
	if diags.HasErrors() {
		return nil, diags
	}
	if cur.file.Source != nil { // an instance built by hand has nothing to compare
		config.Inherit(cur.file, next)
		if d := config.Refusals(cur.file, next); d.HasErrors() {
			return nil, append(diags, d...)
		}
	} else {
		config.CarryRuleIndexes(cur.file.Config, next.Config)
	}

	// Build: plugins first (unchanged blocks keep their process), then a
	// router per namespace. Nothing serving has changed yet.
	old := s.plugins.Load()
	var ps *plugins
	if len(next.Plugins) > 0 {
		var d hcl.Diagnostics
		ps, d = launchKeeping(ctx, next.Config, pluginKeys(next), rl.opts, old)
		if diags = append(diags, d...); d.HasErrors() {
			return nil, diags
		}
	}
	rp := routingPlugins(next.Config, ps)
	routers := make(map[string]*routing.Router, len(next.Namespaces))
	for _, ns := range next.Namespaces {
		routers[ns.Name] = routing.New(ns, rp, &s.Routing, s.log.WithField("namespace", ns.Name))
	}

	// Swap.
	res := &ReloadResult{Hash: next.Hash, PreviousHash: cur.file.Hash, Generation: cur.seq + 1}
	gen := &generation{file: next, loaded: time.Now(), seq: cur.seq + 1}
	rl.cur.Store(gen) // first: log lines from here on carry the new hash
	s.plugins.Store(ps)
	for _, ns := range next.Namespaces {
		if h := rl.handlers[ns.Name]; h != nil {
			h.r.Store(routers[ns.Name])
			continue
		}
		h := &liveRouter{}
		h.r.Store(routers[ns.Name])
		rl.handlers[ns.Name] = h
		s.addNamespace(ns.Name, h)
		res.NamespacesAdded = append(res.NamespacesAdded, ns.Name)
	}
	for name := range rl.handlers {
		if next.Namespace(name) != nil {
			continue
		}
		delete(rl.handlers, name)
		res.SocketsDisconnected += s.SocketIO.RemoveNamespace(name)
		res.NamespacesRemoved = append(res.NamespacesRemoved, name)
	}
	if old != nil && old.link != nil && ps != nil && ps.link != old.link && s.clusterSw != nil {
		names := make([]string, 0, len(next.Namespaces))
		for _, ns := range s.SocketIO.Namespaces() {
			names = append(names, ns.Name())
		}
		s.clusterSw.handover(ps.link, names, s.serveClusterRequest, s.log)
	}
	sc := next.Server
	if rl.logger != nil {
		if lvl, err := logrus.ParseLevel(sc.LogLevel); err == nil {
			rl.logger.SetLevel(lvl)
		}
	}
	if s.api != nil && sc.API != nil {
		s.api.setToken(sc.API.Token)
	}
	s.Memory.SetLoadShedding(sc.LoadShedding)
	eo := engineOptions(sc, s.log)
	live := engineio.Live{AllowedOrigins: eo.AllowedOrigins, Credentials: eo.Credentials, SessionCookie: eo.SessionCookie,
		InstanceCookie: eo.InstanceCookie, PingInterval: eo.PingInterval, PingTimeout: eo.PingTimeout}
	s.Engine.SetLive(live)
	// The limits against hostile clients apply at once to every
	// connection; their counts and buckets carry over.
	lim := configLimits(next.Config)
	el := engineio.Limits{PacketRate: lim.PacketRate, PacketBurst: lim.PacketBurst,
		BodyTimeout: lim.BodyTimeout, MaxHandshakeBytes: lim.MaxHandshakeBytes}
	s.Engine.SetLimits(el)
	if s.echo != nil {
		s.echo.SetLive(live)
		s.echo.SetLimits(el)
	}
	s.SocketIO.SetLimits(lim.MaxRooms, lim.AttachmentTimeout)
	s.ipLimit.set(lim.PerIP)

	// Stop what the new generation does not use, once calls already made
	// to it have had their time (an auth call under way finishes).
	var stop []*pluginEntry
	if old != nil {
		for _, e := range old.entries {
			if ps.find(e.key) == nil {
				stop = append(stop, e)
				res.PluginsStopped = append(res.PluginsStopped, e.p.State().Kind+"."+e.p.State().Name)
			}
		}
	}
	if ps != nil {
		for _, e := range ps.entries {
			if old.find(e.key) == nil {
				res.PluginsStarted = append(res.PluginsStarted, e.p.State().Kind+"."+e.p.State().Name)
			} else {
				res.PluginsKept++
			}
		}
	}
	if len(stop) > 0 {
		grace := time.Duration(0)
		for _, pb := range cur.file.Plugins {
			grace = max(grace, pb.CallTimeout)
		}
		go func() {
			time.Sleep(grace)
			closeEntries(context.Background(), stop)
		}()
	}
	return res, diags
}

// addNamespace serves a namespace a reload added, reaching the other
// instances like the others (its rooms; requests need the adapter to
// know it: see the README).
func (s *Server) addNamespace(name string, h socketio.Handler) {
	h, idx := s.namespace(name, h) // the Admin UI's development mode reports it like the others
	ns := s.SocketIO.AddNamespace(name, h, idx)
	if l := s.cluster; l != nil {
		if w, ok := ns.RoomIndex().(rooms.RoomWatcher); ok {
			w.WatchRooms(func(room string, created bool) {
				l.RoomChanged(sdk.RoomChange{Namespace: name, Room: room, Created: created})
			})
		}
	}
}

// setToken replaces the API token.
func (a *api) setToken(token string) {
	sum := sha256.Sum256([]byte(token))
	a.tokenSum.Store(&sum)
}

// configHealth is what /health says about the config.
type configHealth struct {
	File       string         `json:"file,omitempty"`
	Hash       string         `json:"hash,omitempty"`
	LoadedAt   time.Time      `json:"loaded_at"`
	Generation int            `json:"generation"`
	Reloads    map[string]int `json:"reloads"`
	LastError  *reloadFailure `json:"last_reload_error,omitempty"`
}

func (s *Server) configHealth() *configHealth {
	rl := &s.reload
	g := rl.cur.Load()
	if g == nil {
		return nil
	}
	return &configHealth{File: g.file.Filename, Hash: g.file.Hash, LoadedAt: g.loaded.UTC(), Generation: g.seq,
		Reloads:   map[string]int{"ok": int(rl.ok.Load()), "failed": int(rl.failed.Load())},
		LastError: rl.lastErr.Load()}
}

// reloadMetrics adds the reload counters to the metrics snapshot.
func (s *Server) reloadMetrics(counter func(name, help string, v float64, kv ...string)) {
	const h = "Config reloads, by result (failed: refused, the running config went on)."
	counter("config_reloads_total", h, float64(s.reload.ok.Load()), "result", "ok")
	counter("config_reloads_total", h, float64(s.reload.failed.Load()), "result", "failed")
}

// reload is POST /api/v1/reload: the instance reads its config file again.
// 200 with what changed, or 422 with the diagnostics (nothing changed).
func (a *api) reload(_ http.ResponseWriter, r *http.Request, _ *apiCall) (int, any) {
	res, err := a.s.Reload(r.Context())
	var re *ReloadError
	if errors.As(err, &re) {
		return http.StatusUnprocessableEntity, &apiError{http.StatusUnprocessableEntity, err.Error()}
	}
	if err != nil {
		return http.StatusInternalServerError, &apiError{http.StatusInternalServerError, err.Error()}
	}
	return http.StatusOK, res
}

// configHook adds the serving config's hash to every log entry, so each
// line can be tied to the config it was written under.
type configHook struct{ rl *reloader }

func (configHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h configHook) Fire(e *logrus.Entry) error {
	if g := h.rl.cur.Load(); g != nil && g.file.Hash != "" {
		if _, ok := e.Data["config_hash"]; !ok {
			e.Data["config_hash"] = g.file.Hash
		}
	}
	return nil
}

// assemble launches the plugins of file and builds the instance, ready to
// reload file (reload.go); log gets the config hash on every entry and
// hands entries to the log sinks of the generation serving.
func assemble(ctx context.Context, file *config.Loaded, log *logrus.Logger, version string) (*Server, error) {
	cfg := file.Config
	entry := log.WithFields(logrus.Fields{"service": "socket-server", "instance_id": cfg.Server.InstanceID})
	popts := pluginhost.Options{Log: entry}
	var keys []string
	if file.Source != nil {
		keys = pluginKeys(file)
	}
	ps, diags := launchKeeping(ctx, cfg, keys, popts, nil)
	if diags.HasErrors() {
		return nil, fmt.Errorf("plugins: %w", diags)
	}
	s := newServer(cfg, entry, version, routingPlugins(cfg, ps))
	s.reload.start(file)
	s.reload.logger, s.reload.opts = log, popts
	s.plugins.Store(ps)
	log.AddHook(configHook{&s.reload})
	log.AddHook(logHook{func() []*pluginhost.LogBuffer {
		if p := s.plugins.Load(); p != nil {
			return p.logs
		}
		return nil
	}})
	return s, nil
}

// RunOptions are what Run may be given besides the config.
type RunOptions struct {
	// Reload, when it receives, reloads the config file (SIGHUP).
	Reload <-chan struct{}
}

// watch reloads when the config file's contents change, while the serving
// config says reload { watch = true }; each new content is tried once (a
// broken file is refused once, not every interval).
func (s *Server) watch(ctx context.Context) {
	tried := ""
	for {
		g := s.reload.cur.Load()
		interval := g.file.Server.Reload.Interval
		if interval <= 0 {
			interval = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		g = s.reload.cur.Load()
		if !g.file.Server.Reload.Watch || g.file.Source == nil {
			continue
		}
		src, err := os.ReadFile(g.file.Filename)
		if err != nil {
			continue // being replaced; the next look sees it
		}
		h := config.Hash(src)
		if h == g.file.Hash || h == tried {
			continue
		}
		tried = h
		s.log.WithField("file", g.file.Filename).Info("config file changed: reloading")
		_, _ = s.Reload(ctx) // logged, counted and shown in /health
	}
}
