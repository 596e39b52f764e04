// Package server assembles one instance from its config: the Engine.IO
// endpoint with the Socket.IO layer and the event router behind it, the
// health endpoints, and the HTTP listener's lifecycle.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/admin"
	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/engineio"
	"github.com/socketfleet/socketfleet/core/lifecycle"
	"github.com/socketfleet/socketfleet/core/protocol/eiowire"
	"github.com/socketfleet/socketfleet/core/protocol/siowire"
	"github.com/socketfleet/socketfleet/core/recovery"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/core/routing"
	"github.com/socketfleet/socketfleet/core/socketio"
	"github.com/socketfleet/socketfleet/sdk"
)

// Server is one assembled instance, ready to serve HTTP.
type Server struct {
	cfg     *config.Config
	log     *logrus.Entry
	version string
	started time.Time

	Engine    *engineio.Server
	SocketIO  *socketio.Server
	Routing   routing.Stats
	Memory    *lifecycle.Memory
	echo      *engineio.Server
	handler   http.Handler
	draining  atomic.Bool
	accept    acceptHealth
	api       *api                    // nil without an api block
	plugins   atomic.Pointer[plugins] // nil without plugin blocks; replaced by a reload
	reload    reloader                // reload.go: the config generation serving
	cluster   ClusterLink             // nil on a single instance
	clusterSw *clusterSwitch          // the adapter plugin's link, behind a switch (handover.go); nil without
	// recoveryMem holds a single instance's saved sessions (nil when
	// recovery is off or the adapter plugin keeps them).
	recoveryMem *recovery.Memory

	// requestSlots bounds the cluster requests from other instances being
	// executed at once; RequestsRefused counts those refused over it.
	requestSlots    chan struct{}
	RequestsRefused atomic.Int64

	clusterOut sync.Pool // *engineio.Batch for receiveCluster

	limits  Limits
	ipLimit *ipLimiter // per-IP limits (possibly all off)
	certs   *certStore // nil: plain HTTP (tls.go)

	admin *admin.Admin // nil without an admin block (admin.go)
}

// Limits bound what one client can make the instance hold or do
// (config.hcl: server.limits). Zero values take the defaults.
type Limits struct {
	// Per connection (engineio.Options): packets per second and burst,
	// the time a polling POST body may take, the bytes of its handshake a
	// session keeps.
	PacketRate        float64
	PacketBurst       int
	BodyTimeout       time.Duration
	MaxHandshakeBytes int
	// Per socket (socketio.Options): rooms, and the wait for a binary
	// packet's attachments.
	MaxRooms          int
	AttachmentTimeout time.Duration
	// Per HTTP connection: MaxHeadBytes caps a request head (request line
	// and headers; 431 above it; net/http reads up to MaxHeaderBytes plus
	// 4 KiB, so it is given the difference). IdleTimeout closes a
	// keep-alive connection that sends no new request in time; a long-poll
	// GET waiting for packets is a request under way, not idle.
	MaxHeadBytes int
	IdleTimeout  time.Duration
	// Per client address: sessions at once and handshakes per second,
	// and how the address is found (IPLimits).
	PerIP IPLimits
}

// Defaults of the HTTP limits (the others: engineio's and socketio's).
const (
	DefaultMaxHeadBytes = 16 << 10
	DefaultIdleTimeout  = 60 * time.Second
)

func (l Limits) httpServer(h http.Handler, headTimeout time.Duration) *http.Server {
	if l.MaxHeadBytes <= 0 {
		l.MaxHeadBytes = DefaultMaxHeadBytes
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: headTimeout, IdleTimeout: l.IdleTimeout,
		MaxHeaderBytes: max(l.MaxHeadBytes-4096, 1)}
}

// maxConcurrentRequests bounds the cluster requests from other instances
// executed at once. Each is short (acks are answered by callbacks later),
// so a burst over it means something is wrong: refuse rather than pile up.
const maxConcurrentRequests = 64

// New builds an instance from cfg without plugins.
func New(cfg *config.Config, log *logrus.Entry, version string) *Server {
	return newServer(cfg, log, version, routing.Plugins{})
}

func newServer(cfg *config.Config, log *logrus.Entry, version string, plugins routing.Plugins) *Server {
	return newServerLimits(cfg, log, version, plugins, configLimits(cfg))
}

// configLimits are the limits cfg sets (config fills in the defaults).
func configLimits(cfg *config.Config) Limits {
	l := cfg.Server.Limits
	rate := float64(l.PacketRate)
	if l.PacketRate == 0 && l.PacketBurst > 0 { // parsed (a Config built by hand has no burst): off
		rate = -1
	}
	return Limits{PacketRate: rate, PacketBurst: l.PacketBurst, MaxRooms: l.MaxRooms,
		AttachmentTimeout: l.AttachmentTimeout, BodyTimeout: l.BodyTimeout,
		MaxHeadBytes: int(l.MaxHeadBytes), MaxHandshakeBytes: int(l.MaxHandshakeBytes), IdleTimeout: l.IdleTimeout,
		PerIP: IPLimits{MaxConnections: l.MaxConnectionsPerIP, HandshakeRate: float64(l.HandshakeRatePerIP),
			HandshakeBurst: l.HandshakeBurstPerIP, Exempt: l.PerIPExempt, MaxTracked: l.MaxTrackedIPs,
			ProxyHeader: l.TrustedProxyHeader, Proxies: l.TrustedProxies}}
}

func newServerLimits(cfg *config.Config, log *logrus.Entry, version string, plugins routing.Plugins, lim Limits) *Server {
	sc := cfg.Server
	s := &Server{cfg: cfg, log: log, version: version, started: time.Now(),
		requestSlots: make(chan struct{}, maxConcurrentRequests), limits: lim}
	s.SocketIO = socketio.NewServer(socketio.Options{
		ConnectTimeout:    sc.ConnectTimeout,
		AckTimeout:        sc.AckTimeout,
		MaxAttachments:    sc.MaxAttachments,
		AttachmentTimeout: lim.AttachmentTimeout,
		MaxRooms:          lim.MaxRooms,
		Log:               log,
	})
	if sc.API != nil {
		plugins.RedactAuth = sc.API.RedactAuth
	}
	if rec := sc.Recovery; rec != nil {
		plugins.SkipAuthOnRecovery = rec.SkipAuth
		// A single instance keeps sessions and broadcasts in memory;
		// Run hands them to the adapter plugin when there is one.
		j := &socketio.Recovery{
			JournalAge: rec.MaxDisconnection, JournalEntries: rec.BufferEntries, JournalBytes: rec.BufferSize}
		s.recoveryMem = recovery.NewMemory(rec.MaxDisconnection)
		j.Store = memoryStore{s.recoveryMem, s.SocketIO}
		s.SocketIO.SetRecovery(j)
	}
	s.newAdmin()
	s.reload.start(&config.Loaded{Config: cfg})
	for _, ns := range cfg.Namespaces {
		r := routing.New(ns, plugins, &s.Routing, log.WithField("namespace", ns.Name))
		h, idx := s.namespace(ns.Name, s.reload.router(ns.Name, r))
		s.SocketIO.AddNamespace(ns.Name, h, idx)
	}
	s.Memory = lifecycle.NewMemory(sc.LoadShedding, log)
	opts := engineOptions(sc, log)
	opts.PacketRate, opts.PacketBurst = lim.PacketRate, lim.PacketBurst
	opts.BodyTimeout, opts.MaxHandshakeBytes = lim.BodyTimeout, lim.MaxHandshakeBytes
	opts.Admit = s.admit
	// Made even with every per-IP limit off (it then counts nothing): a
	// reload may turn them on.
	s.ipLimit = newIPLimiter(lim.PerIP)
	opts.Clients = s.ipLimit
	s.Engine = engineio.NewServer(opts, s.SocketIO)

	mux := http.NewServeMux()
	mux.Handle(sc.Path, s.Engine)
	if sc.EngineIOEcho != "" {
		s.echo = engineio.NewServer(opts, echoHandler{})
		mux.Handle(sc.EngineIOEcho, s.echo)
	}
	mux.HandleFunc("/health", s.serveHealth)
	if mb := cfg.Plugin(sdk.KindMetrics); mb == nil || mb.Listen == "" {
		mux.HandleFunc("/metrics", s.serveMetrics)
	}
	mux.HandleFunc("/ready", s.serveReady)
	s.attachAdmin(mux)
	if sc.API != nil {
		s.api = newAPI(s, sc.API, log.WithField("component", "api"))
		mux.Handle(apiPrefix, s.api)
	}
	s.handler = mux
	return s
}

func engineOptions(sc config.Server, log *logrus.Entry) engineio.Options {
	o := engineio.Options{
		PingInterval:   sc.PingInterval,
		PingTimeout:    sc.PingTimeout,
		UpgradeTimeout: sc.UpgradeTimeout,
		MaxPayload:     sc.MaxPayload,
		SendQueue:      sc.SendQueue,
		AllowedOrigins: sc.CORS.AllowedOrigins,
		Credentials:    sc.CORS.Credentials,
		SessionCookie:  cookie(sc.SessionCookie),
		InstanceCookie: cookie(sc.InstanceCookie),
		InstanceID:     sc.InstanceID,
		Log:            log,
	}
	for _, t := range sc.Transports {
		switch t {
		case "polling":
			o.AllowPolling = true
		case "websocket":
			o.AllowWebSocket = true
		}
	}
	return o
}

func cookie(c *config.Cookie) *engineio.Cookie {
	if c == nil {
		return nil
	}
	ss := http.SameSiteLaxMode
	switch strings.ToLower(c.SameSite) {
	case "strict":
		ss = http.SameSiteStrictMode
	case "none":
		ss = http.SameSiteNoneMode
	}
	return &engineio.Cookie{Name: c.Name, Path: c.Path, HTTPOnly: c.HTTPOnly, Secure: c.Secure, SameSite: ss, MaxAge: c.MaxAge}
}

// admit refuses new handshakes under memory pressure.
func (s *Server) admit(*http.Request) (int, int) {
	if s.Memory.Shedding() {
		s.Memory.Rejected.Add(1)
		return http.StatusServiceUnavailable, s.Memory.RetryAfter()
	}
	return 0, 0
}

// ServeHTTP serves the instance's endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// serveMetricsOn serves /metrics (only) on its own listener, for a metrics
// block with `listen`; stop closes it.
func (s *Server) serveMetricsOn(addr string) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen on %s: %w", addr, err)
	}
	l = s.metricsListener(l)
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", s.serveMetrics)
	hs := s.limits.httpServer(mux, 10*time.Second)
	go func() { _ = hs.Serve(l) }()
	s.log.WithField("addr", l.Addr().String()).Info("metrics listening")
	return func() { _ = hs.Close() }, nil
}

// Serve serves on l until ctx is done, then drains: /ready answers 503 at
// once, new handshakes are refused, every socket gets the maintenance
// event, and connections are closed paced over the drain window. What is
// left at the deadline is closed; in-flight requests get 5 s more.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	const headTimeout = 10 * time.Second
	hs := s.limits.httpServer(s, headTimeout)
	s.withTLSState(hs)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(newUpgradeListener(l, s, s.log, headTimeout, &s.accept)) }()
	mctx, stopMemory := context.WithCancel(context.Background())
	defer stopMemory()
	go s.Memory.Run(mctx, s.cfg.Server.MemoryReportInterval)
	s.runAdmin(mctx)
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	s.Drain(context.Background())
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// Drain runs the drain sequence; it returns when every connection is
// closed, at the latest after the drain window (or when ctx ends).
func (s *Server) Drain(ctx context.Context) {
	dr := s.reload.config().Server.Drain
	s.draining.Store(true)
	s.Engine.StopAccepting()
	if s.echo != nil {
		s.echo.Close(engineio.ReasonShuttingDown)
	}
	sessions := s.Engine.Sessions()
	s.log.WithFields(logrus.Fields{"connections": len(sessions), "drain_window": dr.Timeout.String()}).Info("draining")
	payload := siowire.AppendString([]byte(`{"message":`), dr.Message)
	payload = siowire.AppendString(append(payload, `,"code":`...), dr.Code)
	payload = append(payload, '}')
	data := socketio.EventData(dr.Event, [][]byte{payload})
	for _, ns := range s.SocketIO.Namespaces() {
		ns.BroadcastLocal(rooms.Options{}, data, nil) // this instance's clients only
	}
	conns := make([]lifecycle.Closer, len(sessions))
	for i, sess := range sessions {
		conns[i] = sess
	}
	// Spread the closes over the window, but no thinner than 10 ms per
	// connection: a few clients do not make a reconnect storm.
	window := min(dr.Timeout, time.Duration(len(conns))*10*time.Millisecond)
	dctx, cancel := context.WithTimeout(ctx, dr.Timeout)
	defer cancel()
	lifecycle.PacedClose(dctx, conns, window, engineio.ReasonShuttingDown)
	s.log.Info("drained")
}

// Run launches the plugins, listens on the configured address and serves
// until ctx is done; then it drains, flushes the log sinks and stops the
// plugins.
func Run(ctx context.Context, cfg *config.Config, log *logrus.Logger, version string) error {
	return RunWith(ctx, &config.Loaded{Config: cfg}, log, version, RunOptions{})
}

// RunWith is Run for a config file loaded with config.LoadFile, which the
// instance can reload (Server.Reload): on opts.Reload, or POST
// /api/v1/reload.
func RunWith(ctx context.Context, file *config.Loaded, log *logrus.Logger, version string, opts RunOptions) error {
	cfg := file.Config
	s, err := assemble(ctx, file, log, version)
	if err != nil {
		return err
	}
	ps := s.plugins.Load()
	// The plugins serving at exit, which a reload may have replaced.
	defer func() { s.plugins.Load().close(context.Background()) }()
	go s.watch(ctx)
	if opts.Reload != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-opts.Reload:
					_, _ = s.Reload(ctx) // logged, counted and shown in /health
				}
			}
		}()
	}
	if ps.link != nil {
		if cfg.Server.Recovery != nil {
			s.recoverThrough(ps.link)
		}
		s.clusterSw = newClusterSwitch(ps.link) // a reload may hand over to another adapter process
		s.attachCluster(s.clusterSw)
	}
	if err := s.startTLS(ctx); err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Listen, err)
	}
	l = s.tlsListener(l)
	if mb := cfg.Plugin(sdk.KindMetrics); mb != nil && mb.Listen != "" {
		stop, err := s.serveMetricsOn(mb.Listen)
		if err != nil {
			l.Close()
			return fmt.Errorf("%s: %w", mb.Where(), err)
		}
		defer stop()
	}
	s.log.WithFields(logrus.Fields{"addr": l.Addr().String(), "path": cfg.Server.Path, "version": version,
		"plugins": len(cfg.Plugins), "tls": s.certs != nil}).Info("listening")
	return s.Serve(ctx, l)
}

// ClusterLink is the cluster adapter as an instance uses it:
// *pluginhost.Link, or a localcluster.Node in tests.
type ClusterLink interface {
	socketio.Cluster
	Receive(deliver func([]sdk.AdapterMessage))
	ServeRequests(namespaces []string, handle func(sdk.IncomingRequest))
	RoomChanged(c sdk.RoomChange)
	SetRoomSnapshot(snapshot func() []sdk.RoomChange)
}

// AttachCluster connects an instance built with New to the other
// instances through l, as Run does with the adapter plugin's link (e.g. to
// run instances in one process with another link). Call it once, before
// Serve.
func (s *Server) AttachCluster(l ClusterLink) { s.attachCluster(l) }

// attachCluster connects the instance to the other instances: broadcasts
// both ways, requests from them, and the rooms this instance holds (for
// adapters that subscribe per room). Call before serving.
func (s *Server) attachCluster(l ClusterLink) {
	s.cluster = l
	s.SocketIO.SetCluster(l)
	l.SetRoomSnapshot(s.roomSnapshot)
	names := make([]string, 0, len(s.SocketIO.Namespaces()))
	for _, ns := range s.SocketIO.Namespaces() {
		name := ns.Name()
		names = append(names, name)
		if w, ok := ns.RoomIndex().(rooms.RoomWatcher); ok {
			w.WatchRooms(func(room string, created bool) {
				l.RoomChanged(sdk.RoomChange{Namespace: name, Room: room, Created: created})
			})
		}
	}
	l.Receive(s.receiveCluster)
	l.ServeRequests(names, s.serveClusterRequest)
}

// roomSnapshot lists every named room this instance holds, as created.
func (s *Server) roomSnapshot() []sdk.RoomChange {
	var out []sdk.RoomChange
	for _, ns := range s.SocketIO.Namespaces() {
		for _, r := range ns.LocalRooms(false) {
			out = append(out, sdk.RoomChange{Namespace: ns.Name(), Room: r, Created: true})
		}
	}
	return out
}

// serveClusterRequest runs a request from another instance. Requests that
// get no answer (join, leave, disconnect, a server-side emit without ack)
// change state and are as cheap per socket as a broadcast: they run here,
// in the order they came, like broadcasts from other instances, and are
// never refused (a refused join would be lost without anyone knowing; run
// apart, a join and the leave after it could swap). The others (fetches,
// broadcasts with acks) run off the adapter's delivery goroutine (which
// must not block), at most maxConcurrentRequests at once; over that they
// are refused and counted (the requester sees this instance not answering).
func (s *Server) serveClusterRequest(in sdk.IncomingRequest) {
	if !in.Type.Answered(in.WantAck) {
		s.SocketIO.ServeRequest(in)
		return
	}
	select {
	case s.requestSlots <- struct{}{}:
	default:
		s.RequestsRefused.Add(1)
		s.log.WithFields(logrus.Fields{"type": in.Type.String(), "namespace": in.Namespace}).
			Debug("cluster request refused: too many in progress")
		return
	}
	go func() {
		defer func() { <-s.requestSlots }()
		s.SocketIO.ServeRequest(in)
	}()
}

// receiveCluster delivers broadcasts from other instances to local sockets.
// A batch of several is queued first and written once per recipient
// socket (one writev for all of them); a lone broadcast is written as the
// walk goes, one send per recipient, like a local one: holding it would
// only cost a second pass and the queue.
func (s *Server) receiveCluster(batch []sdk.AdapterMessage) {
	if len(batch) == 1 {
		if ns := s.SocketIO.Namespace(batch[0].Namespace); ns != nil {
			ns.DeliverCluster(nil, &batch[0])
		}
		return
	}
	out, _ := s.clusterOut.Get().(*engineio.Batch)
	if out == nil {
		out = new(engineio.Batch)
	}
	defer s.clusterOut.Put(out)
	for i := range batch {
		m := &batch[i]
		if ns := s.SocketIO.Namespace(m.Namespace); ns != nil {
			ns.DeliverCluster(out, m)
		}
	}
	out.Flush()
}

type health struct {
	Status      string           `json:"status"`
	InstanceID  string           `json:"instance_id"`
	Version     string           `json:"version"`
	Uptime      float64          `json:"uptime_seconds"`
	Connections int64            `json:"connections"`
	Sockets     int64            `json:"sockets"`
	Goroutines  int              `json:"goroutines"`
	HeapAlloc   uint64           `json:"heap_alloc_bytes"`
	Sys         uint64           `json:"sys_bytes"`
	AcceptErrs  uint64           `json:"accept_errors"`
	LimitsHit   map[string]int64 `json:"limits_hit"`
	Plugins     []pluginHealth   `json:"plugins,omitempty"`
	Config      *configHealth    `json:"config,omitempty"`
}

type pluginHealth struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Up        bool   `json:"up"`
	Restarts  int    `json:"restarts"`
	PID       int    `json:"pid,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// serveHealth answers liveness for anyone; what could help an attacker
// (plugin pids, their last errors, which name addresses) only to a caller
// with the API token.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := health{
		Status:      "ok",
		InstanceID:  s.cfg.Server.InstanceID,
		Version:     s.version,
		Uptime:      time.Since(s.started).Seconds(),
		Connections: s.SocketIO.Stats.Connections.Load(),
		Sockets:     s.SocketIO.Stats.Sockets.Load(),
		Goroutines:  runtime.NumGoroutine(),
		HeapAlloc:   ms.HeapAlloc,
		Sys:         ms.Sys,
		AcceptErrs:  s.accept.errors.Load(),
		LimitsHit:   s.limitsHit(),
		Config:      s.configHealth(),
	}
	detailed := s.api != nil && r.Header.Get("Authorization") != "" && s.api.tokenMatches(r)
	if ps := s.plugins.Load(); ps != nil {
		for _, st := range ps.states() {
			ph := pluginHealth{Kind: st.Kind, Name: st.Name, Up: st.Up, Restarts: st.Restarts}
			if detailed {
				ph.PID, ph.LastError = st.PID, st.LastError
			}
			h.Plugins = append(h.Plugins, ph)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(h)
}

// limitsHit counts what the limits against hostile clients stopped, by
// limit: connections closed (packet_rate, invalid_utf8, body_timeout,
// attachment_timeout), joins refused (rooms), handshake headers not
// kept (handshake_headers), handshakes refused per client address
// (connections_per_ip, handshake_rate_per_ip, per_ip_table_full).
func (s *Server) limitsHit() map[string]int64 {
	e, st := s.Engine, &s.SocketIO.Stats
	var overConns, overRate, full int64
	if l := s.ipLimit; l != nil {
		overConns, overRate, full = l.overConnections.Load(), l.overRate.Load(), l.tableFull.Load()
	}
	return map[string]int64{
		"connections_per_ip":    overConns,
		"handshake_rate_per_ip": overRate,
		"per_ip_table_full":     full,
		"packet_rate":           e.RateLimited.Load(),
		"invalid_utf8":          e.InvalidUTF8.Load(),
		"body_timeout":          e.BodyTimeouts.Load(),
		"handshake_headers":     e.HeadersDropped.Load(),
		"attachment_timeout":    st.AttachmentTimeouts.Load(),
		"rooms":                 st.JoinsRefused.Load(),
	}
}

// Ready reports whether the instance should get new clients, and if not why.
func (s *Server) Ready() (bool, string) {
	switch {
	case s.draining.Load():
		return false, "draining"
	case s.Memory.Shedding():
		return false, "memory pressure"
	}
	if why := s.accept.failing(); why != "" {
		return false, why
	}
	if why := s.plugins.Load().down(); why != "" {
		return false, why
	}
	return true, ""
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	ok, reason := s.Ready()
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write(siowire.AppendString([]byte(`{"ready":false,"instance_id":`), s.cfg.Server.InstanceID))
		_, _ = w.Write(append(siowire.AppendString([]byte(`,"reason":`), reason), "}\n"...))
		return
	}
	_, _ = w.Write(append(siowire.AppendString([]byte(`{"ready":true,"instance_id":`), s.cfg.Server.InstanceID), "}\n"...))
}

// echoHandler is the raw Engine.IO echo endpoint the public Engine.IO
// conformance suite talks to: every message goes back unchanged.
type echoHandler struct{}

func (echoHandler) Open(s *engineio.Session) {
	s.SetHandler(func(p eiowire.Packet) {
		if p.Binary {
			s.Send(engineio.NewBinary(p.Data))
			return
		}
		s.Send(engineio.NewText(eiowire.Message, p.Data)) // copies
	}, func(string) {})
}
