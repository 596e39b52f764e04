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
	"time"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/engineio"
	eiop "github.com/socketfleet/socketfleet/core/protocol/engineio"
	"github.com/socketfleet/socketfleet/core/routing"
	"github.com/socketfleet/socketfleet/core/socketio"
)

// Server is one assembled instance, ready to serve HTTP.
type Server struct {
	cfg     *config.Config
	log     *logrus.Entry
	version string
	started time.Time

	Engine   *engineio.Server
	SocketIO *socketio.Server
	Routing  routing.Stats
	echo     *engineio.Server
	handler  http.Handler
}

// New builds an instance from cfg.
func New(cfg *config.Config, log *logrus.Entry, version string) *Server {
	sc := cfg.Server
	s := &Server{cfg: cfg, log: log, version: version, started: time.Now()}
	s.SocketIO = socketio.NewServer(socketio.Options{
		ConnectTimeout: sc.ConnectTimeout,
		AckTimeout:     sc.AckTimeout,
		MaxAttachments: sc.MaxAttachments,
		Log:            log,
	})
	for _, ns := range cfg.Namespaces {
		s.SocketIO.AddNamespace(ns.Name, routing.New(ns, nil, &s.Routing, log.WithField("namespace", ns.Name)), nil)
	}
	opts := engineOptions(sc, log)
	s.Engine = engineio.NewServer(opts, s.SocketIO)

	mux := http.NewServeMux()
	mux.Handle(sc.Path, s.Engine)
	if sc.EngineIOEcho != "" {
		s.echo = engineio.NewServer(opts, echoHandler{})
		mux.Handle(sc.EngineIOEcho, s.echo)
	}
	mux.HandleFunc("/health", s.serveHealth)
	mux.HandleFunc("/ready", s.serveReady)
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

// ServeHTTP serves the instance's endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Serve serves on l until ctx is done, then shuts down: new handshakes are
// refused, every client is told the server is going away, and in-flight
// requests get up to 5 s to finish.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	s.Engine.Close(engineio.ReasonShuttingDown)
	if s.echo != nil {
		s.echo.Close(engineio.ReasonShuttingDown)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// Run listens on the configured address and serves until ctx is done.
func Run(ctx context.Context, cfg *config.Config, log *logrus.Logger, version string) error {
	entry := log.WithFields(logrus.Fields{"service": "socket-server", "instance_id": cfg.Server.InstanceID})
	s := New(cfg, entry, version)
	l, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Listen, err)
	}
	entry.WithFields(logrus.Fields{"addr": l.Addr().String(), "path": cfg.Server.Path, "version": version}).Info("listening")
	return s.Serve(ctx, l)
}

type health struct {
	Status      string  `json:"status"`
	InstanceID  string  `json:"instance_id"`
	Version     string  `json:"version"`
	Uptime      float64 `json:"uptime_seconds"`
	Connections int64   `json:"connections"`
	Sockets     int64   `json:"sockets"`
	Goroutines  int     `json:"goroutines"`
	HeapAlloc   uint64  `json:"heap_alloc_bytes"`
	Sys         uint64  `json:"sys_bytes"`
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
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
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(h)
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ready":true}` + "\n"))
}

// echoHandler is the raw Engine.IO echo endpoint the public Engine.IO
// conformance suite talks to: every message goes back unchanged.
type echoHandler struct{}

func (echoHandler) Open(s *engineio.Session) {
	s.SetHandler(func(p eiop.Packet) {
		if p.Binary {
			s.Send(engineio.NewBinary(append([]byte(nil), p.Data...)))
			return
		}
		s.Send(engineio.NewText(eiop.Message, append([]byte(nil), p.Data...)))
	}, func(string) {})
}
