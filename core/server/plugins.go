package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/core/routing"
	"github.com/socketfleet/socketfleet/sdk"
)

// plugins are the running plugins of an instance.
type plugins struct {
	host    *pluginhost.Host
	routing routing.Plugins
	metrics sdk.MetricsExporter
	link    *pluginhost.Link
	logs    []*pluginhost.LogBuffer
}

// launchPlugins starts every plugin block, decodes the block with the schema
// the plugin declares and configures it. Problems come back as diagnostics
// pointing at the block (launch failures) or the attribute (schema errors).
func launchPlugins(ctx context.Context, cfg *config.Config, log *logrus.Entry) (*plugins, hcl.Diagnostics) {
	ps := &plugins{host: pluginhost.New(pluginhost.Options{Log: log})}
	var diags hcl.Diagnostics
	for _, pb := range cfg.Plugins {
		p, err := ps.host.Launch(ctx, pluginhost.Spec{
			Kind: pb.Kind, Name: pb.Name, Command: pb.Command, Dir: cfg.Server.PluginDir,
			SHA256: pb.SHA256, CallTimeout: pb.CallTimeout, Where: pb.Where(),
		})
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Plugin failed to start",
				Detail: err.Error(), Subject: pb.DeclRange.Ptr()})
			continue
		}
		pc, d := pb.DecodeBody(p.Schema())
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		if err := p.Configure(ctx, pc); err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Plugin refused its configuration",
				Detail: fmt.Sprintf("%s: %v", pb.Where(), err), Subject: pb.DeclRange.Ptr()})
			continue
		}
		switch pb.Kind {
		case sdk.KindAuth:
			ps.routing.Auth = p.Authenticator()
		case sdk.KindSharding:
			ps.routing.Sharding = p.Sharder()
		case sdk.KindMetrics:
			ps.metrics = p.MetricsExporter()
		case sdk.KindAdapter:
			ps.link = p.ClusterLink(pluginhost.LinkOptions{})
		case sdk.KindLogSink:
			ps.logs = append(ps.logs, p.LogBuffer(pluginhost.BufferOptions{}))
		}
	}
	if diags.HasErrors() {
		ps.close(context.Background())
		return nil, diags
	}
	return ps, diags
}

// ValidatePlugins launches the plugins of cfg only to check their blocks
// against the schemas they declare, then stops them. Nothing serves.
func ValidatePlugins(ctx context.Context, cfg *config.Config, log *logrus.Entry) hcl.Diagnostics {
	ps, diags := launchPlugins(ctx, cfg, log)
	if ps != nil {
		ps.close(ctx)
	}
	return diags
}

// close flushes the log sinks (bounded) and stops every plugin.
func (ps *plugins) close(ctx context.Context) {
	if ps == nil {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, lb := range ps.logs {
		_ = lb.Flush(fctx)
		lb.Close()
	}
	if ps.link != nil {
		ps.link.Close()
	}
	ps.host.Close()
}

// pluginsReady reports the first plugin that is down.
func (ps *plugins) down() string {
	if ps == nil {
		return ""
	}
	for _, st := range ps.host.States() {
		if !st.Up {
			return fmt.Sprintf("plugin %s %q down", st.Kind, st.Name)
		}
	}
	return ""
}

// logHook hands log entries to the log-sink plugins without ever blocking
// the caller: a full buffer drops the entry and counts it.
type logHook struct{ bufs []*pluginhost.LogBuffer }

func (h logHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h logHook) Fire(e *logrus.Entry) error {
	fields, err := json.Marshal(e.Data)
	if err != nil {
		fields = []byte("{}")
	}
	entry := sdk.LogEntry{Time: e.Time, Level: e.Level.String(), Message: e.Message, Fields: fields}
	for _, b := range h.bufs {
		b.Add(entry)
	}
	return nil
}

// serveMetrics renders the core's counters through the metrics plugin.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.plugins == nil || s.plugins.metrics == nil {
		http.Error(w, "no metrics plugin configured", http.StatusNotFound)
		return
	}
	ct, body, err := s.plugins.metrics.Render(r.Context(), s.snapshot())
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, pluginhost.ErrUnavailable) {
			status = http.StatusServiceUnavailable
		}
		http.Error(w, "metrics plugin: "+err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", ct)
	_, _ = w.Write(body)
}

// snapshot gathers the core's counters: cheap atomics, read per scrape.
func (s *Server) snapshot() *sdk.MetricsSnapshot {
	inst := []sdk.MetricLabel{{Name: "instance", Value: s.cfg.Server.InstanceID}}
	g := func(name, help string, v float64) sdk.MetricSample {
		return sdk.MetricSample{Name: name, Help: help, Labels: inst, Value: v}
	}
	st := &s.SocketIO.Stats
	rt := &s.Routing
	mem := s.Memory.Last()
	draining := 0.0
	if s.draining.Load() {
		draining = 1
	}
	snap := &sdk.MetricsSnapshot{
		Gauges: []sdk.MetricSample{
			g("socket_connections_active", "Open Engine.IO connections.", float64(st.Connections.Load())),
			g("socket_sockets_active", "Connected namespace sockets.", float64(st.Sockets.Load())),
			g("memory_usage_rss_bytes", "Resident set size.", float64(mem.RSS)),
			g("memory_usage_heap_total_bytes", "Heap obtained from the OS.", float64(mem.HeapTotal)),
			g("memory_usage_heap_used_bytes", "Heap in use.", float64(mem.HeapUsed)),
			g("instance_draining", "1 while the instance drains.", draining),
		},
		Counters: []sdk.MetricSample{
			g("socket_packets_received_total", "Socket.IO packets received.", float64(st.PacketsIn.Load())),
			g("socket_packets_sent_total", "Socket.IO packets queued to clients, per recipient.", float64(st.PacketsOut.Load())),
			g("socket_broadcasts_total", "Broadcasts.", float64(st.Broadcasts.Load())),
			g("socket_parse_errors_total", "Connections closed for invalid packets.", float64(st.ParseErrors.Load())),
			g("socket_events_unknown_total", "Events no rule names.", float64(rt.Unknown.Load())),
			g("socket_events_rate_limited_total", "Events over a rule's rate limit.", float64(rt.RateLimited.Load())),
			g("socket_events_too_large_total", "Events over a rule's max_size.", float64(rt.TooLarge.Load())),
			g("socket_auth_refused_total", "Handshakes the auth plugin refused.", float64(rt.AuthRefused.Load())),
			g("socket_auth_unavailable_total", "Handshakes refused because auth was unavailable.", float64(rt.AuthFailed.Load())),
			g("load_shedding_rejections_total", "Handshakes refused under memory pressure.", float64(s.Memory.Rejected.Load())),
		},
	}
	if s.plugins != nil {
		for _, ps := range s.plugins.host.Stats() {
			l := append(inst[:1:1], sdk.MetricLabel{Name: "plugin", Value: ps.Kind + "." + ps.Name})
			snap.Counters = append(snap.Counters, sdk.MetricSample{Name: "plugin_restarts_total",
				Help: "Plugin restarts.", Labels: l, Value: float64(ps.Restarts)})
		}
		if s.plugins.link != nil {
			ls := s.plugins.link.Stats()
			snap.Counters = append(snap.Counters,
				g("cluster_messages_sent_total", "Broadcasts published to the cluster.", float64(ls.Sent)),
				g("cluster_messages_received_total", "Broadcasts received from the cluster.", float64(ls.Received)),
				g("cluster_messages_dropped_total", "Cluster broadcasts dropped: queue full.", float64(ls.Dropped)))
		}
	}
	return snap
}
