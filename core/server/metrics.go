package server

// The metrics an instance exposes: the core's counters gathered per scrape
// into one snapshot, plus what plugins report about themselves, rendered by
// the metrics plugin. A new metric is one more entry in snapshot (see
// docs/architecture.md, "Where to add things").

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/socketfleet/socketfleet/core/engineio"
	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/sdk"
)

// serveMetrics renders the core's counters through the metrics plugin.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	ps := s.plugins.Load()
	if ps == nil || ps.metrics == nil {
		http.Error(w, "no metrics plugin configured", http.StatusNotFound)
		return
	}
	ct, body, err := ps.metrics.Render(r.Context(), s.snapshot())
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
// Every series carries the instance label.
func (s *Server) snapshot() *sdk.MetricsSnapshot {
	inst := sdk.MetricLabel{Name: "instance", Value: s.cfg.Server.InstanceID}
	labels := func(kv ...string) []sdk.MetricLabel {
		out := []sdk.MetricLabel{inst}
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, sdk.MetricLabel{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	snap := &sdk.MetricsSnapshot{}
	gauge := func(name, help string, v float64, kv ...string) {
		snap.Gauges = append(snap.Gauges, sdk.MetricSample{Name: name, Help: help, Labels: labels(kv...), Value: v})
	}
	counter := func(name, help string, v float64, kv ...string) {
		snap.Counters = append(snap.Counters, sdk.MetricSample{Name: name, Help: help, Labels: labels(kv...), Value: v})
	}
	st := &s.SocketIO.Stats
	rt := &s.Routing
	mem := s.Memory.Last()
	draining := 0.0
	if s.draining.Load() {
		draining = 1
	}
	gauge("socket_connections_active", "Open Engine.IO connections.", float64(st.Connections.Load()))
	gauge("socket_sockets_active", "Connected namespace sockets.", float64(st.Sockets.Load()))
	gauge("memory_usage_rss_bytes", "Resident set size.", float64(mem.RSS))
	gauge("memory_usage_heap_total_bytes", "Heap obtained from the OS.", float64(mem.HeapTotal))
	gauge("memory_usage_heap_used_bytes", "Heap in use (live objects and garbage not yet collected).", float64(mem.HeapUsed))
	gauge("memory_usage_heap_live_bytes", "Heap the last collection found reachable: what load shedding decides on.", float64(mem.HeapLive))
	gauge("instance_draining", "1 while the instance drains.", draining)
	if l := s.ipLimit; l != nil {
		gauge("socket_per_ip_tracked_addresses", "Client addresses the per-IP limits hold (at most limits.max_tracked_ips).", float64(l.tracked()))
	}

	s.tlsMetrics(gauge, counter)
	counter("socket_connections_opened_total", "Engine.IO connections opened.", float64(s.Engine.Opened.Load()))
	counter("socket_accept_errors_total", "Failed accept calls on the main listener (descriptors, buffers or memory exhausted); the listener backs off and goes on.", float64(s.accept.errors.Load()))
	for reason, n := range st.Closed() {
		counter("socket_connections_closed_total", "Engine.IO connections closed, by reason.", float64(n), "reason", reason)
	}
	const hf = "Handshakes and CONNECTs refused, by reason."
	for code, name := range engineio.ErrorNames {
		counter("socket_handshake_failures_total", hf, float64(s.Engine.Errors[code].Load()), "reason", name)
	}
	counter("socket_handshake_failures_total", hf, float64(st.InvalidNamespace.Load()), "reason", "invalid_namespace")
	counter("socket_handshake_failures_total", hf, float64(rt.AuthRefused.Load()), "reason", "auth_refused")
	counter("socket_handshake_failures_total", hf, float64(rt.AuthFailed.Load()), "reason", "auth_unavailable")
	counter("socket_handshake_failures_total", hf, float64(rt.WrongShard.Load()), "reason", "wrong_shard")
	counter("socket_handshake_failures_total", hf, float64(s.Memory.Rejected.Load()), "reason", "load_shedding")
	counter("socket_handshake_failures_total", hf, float64(s.Engine.RefusedDraining.Load()), "reason", "draining")
	if l := s.ipLimit; l != nil {
		counter("socket_handshake_failures_total", hf, float64(l.overConnections.Load()+l.overRate.Load()+l.tableFull.Load()), "reason", "per_ip_limit")
	}
	counter("load_shedding_rejections_total", "Handshakes refused under memory pressure.", float64(s.Memory.Rejected.Load()))
	s.adminMetrics(counter)
	for _, ns := range s.SocketIO.Namespaces() {
		n, name := &ns.Stats, ns.Name()
		counter("socket_messages_received_total", "Events received, by namespace.", float64(n.EventsIn.Load()), "namespace", name)
		counter("socket_received_bytes_total", "Bytes of events received, by namespace.", float64(n.BytesIn.Load()), "namespace", name)
		counter("socket_messages_sent_total", "Packets queued to clients (per recipient), by namespace.", float64(n.PacketsOut.Load()), "namespace", name)
		counter("socket_sent_bytes_total", "Bytes queued to clients (per recipient), by namespace.", float64(n.BytesOut.Load()), "namespace", name)
	}
	for name, n := range s.limitsHit() {
		counter("socket_limits_hit_total", "Hostile-client limits hit, by limit (server.limits in config.hcl).", float64(n), "limit", name)
	}
	counter("socket_broadcasts_total", "Broadcasts.", float64(st.Broadcasts.Load()))
	if s.SocketIO.Recovery() != nil {
		s.recoveryMetrics(gauge, counter)
	}
	counter("socket_parse_errors_total", "Connections closed for invalid packets.", float64(st.ParseErrors.Load()))
	counter("socket_events_unknown_total", "Events no rule names.", float64(rt.Unknown.Load()))
	counter("socket_events_rate_limited_total", "Events over a rule's rate limit.", float64(rt.RateLimited.Load()))
	counter("socket_events_too_large_total", "Events over a rule's max_size.", float64(rt.TooLarge.Load()))
	for _, re := range rt.RuleErrorCounts() {
		counter("socket_rule_errors_total", "Event-rule expressions that failed on an event's data, by rule (file:line of the expression).",
			float64(re.Count), "namespace", re.Namespace, "event", re.Event, "rule", re.Rule)
	}
	counter("socket_server_emits_total", "Server-side emits sent by server_emit actions.", float64(rt.ServerEmits.Load()))
	const se = "Server-side emits received, by result."
	counter("socket_server_events_total", se, float64(rt.ServerEvents.Load()), "result", "handled")
	counter("socket_server_events_total", se, float64(st.ServerEventsUnknown.Load()), "result", "unknown")
	counter("socket_server_events_total", se, float64(st.ServerEventsInvalid.Load()), "result", "invalid")
	counter("socket_server_event_errors_total", "server_event expressions that failed on an emit's data.", float64(rt.ServerErrors.Load()))
	const cr = "Cluster requests sent to the other instances, by result."
	counter("cluster_requests_total", cr, float64(st.ClusterRequestsSent.Load()), "result", "sent")
	counter("cluster_requests_total", cr, float64(st.ClusterRequestErrors.Load()), "result", "failed")
	counter("cluster_requests_total", cr, float64(st.ClusterRequestsDropped.Load()), "result", "dropped")
	const cs = "Cluster requests from other instances, by result."
	counter("cluster_requests_received_total", cs, float64(st.ClusterRequestsServed.Load()), "result", "served")
	counter("cluster_requests_received_total", cs, float64(st.ClusterRequestsIgnored.Load()), "result", "ignored")
	counter("cluster_requests_received_total", cs, float64(s.RequestsRefused.Load()), "result", "refused")

	s.reloadMetrics(counter)
	ps := s.plugins.Load()
	if ps == nil {
		return snap
	}
	for _, p := range ps.stats() {
		plugin := p.Kind + "." + p.Name
		counter("plugin_restarts_total", "Plugin restarts.", float64(p.Restarts), "plugin", plugin)
		counter("plugin_call_errors_total", "Plugin calls that failed, timed out or found the plugin down.",
			float64(p.Errors+p.Timeouts+p.Unavailable), "plugin", plugin)
		snap.Histograms = append(snap.Histograms, sdk.MetricHistogram{
			Name: "plugin_call_duration_seconds", Help: "Latency of calls into plugins.",
			Labels: labels("plugin", plugin), Bounds: pluginhost.LatencyBounds, Counts: p.LatencyCounts,
			Count: p.LatencyCount, Sum: p.LatencySum.Seconds(),
		})
	}
	var logDropped uint64
	for _, lb := range ps.logs {
		logDropped += lb.Stats().Dropped
	}
	counter("log_entries_dropped_total", "Log entries a log sink could not take (buffer full or failing).", float64(logDropped))
	if ps.link != nil {
		ls := ps.link.Stats()
		counter("cluster_messages_sent_total", "Broadcasts published to the cluster.", float64(ls.Sent))
		counter("cluster_messages_received_total", "Broadcasts received from the cluster.", float64(ls.Received))
		counter("cluster_messages_dropped_total", "Cluster broadcasts dropped: queue full or publish failing.",
			float64(ls.Dropped))
	}
	// Last, so that the core's own series win a clash. The plugins are
	// asked at once, under one deadline: a hung plugin costs a scrape 1 s,
	// not 1 s each. Merged in a fixed order, so the exposition is stable.
	extras := make([]*sdk.MetricsSnapshot, len(ps.entries))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	var wg sync.WaitGroup
	for i, e := range ps.entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			extras[i] = e.p.PluginMetrics(ctx)
		}()
	}
	wg.Wait()
	cancel()
	for _, extra := range extras {
		mergePluginMetrics(snap, extra, inst)
	}
	return snap
}

// mergePluginMetrics appends a plugin's own metrics to snap with the
// instance label. Series the snapshot already has (same name and labels),
// and names it already uses for another kind of metric, are skipped: a
// plugin cannot shadow the core's series or make the exposition invalid.
func mergePluginMetrics(snap, extra *sdk.MetricsSnapshot, inst sdk.MetricLabel) {
	if extra == nil {
		return
	}
	const counterKind, gaugeKind, histKind = 1, 2, 3
	kinds := map[string]int{}
	seen := map[string]bool{}
	key := func(name string, labels []sdk.MetricLabel) string {
		var b strings.Builder
		b.WriteString(name)
		for _, l := range labels {
			b.WriteByte(0)
			b.WriteString(l.Name)
			b.WriteByte('=')
			b.WriteString(l.Value)
		}
		return b.String()
	}
	for _, m := range snap.Counters {
		kinds[m.Name], seen[key(m.Name, m.Labels)] = counterKind, true
	}
	for _, m := range snap.Gauges {
		kinds[m.Name], seen[key(m.Name, m.Labels)] = gaugeKind, true
	}
	for _, m := range snap.Histograms {
		kinds[m.Name], seen[key(m.Name, m.Labels)] = histKind, true
	}
	withInstance := func(labels []sdk.MetricLabel) []sdk.MetricLabel {
		for _, l := range labels {
			if l.Name == inst.Name {
				return labels
			}
		}
		return append([]sdk.MetricLabel{inst}, labels...)
	}
	admit := func(name string, kind int, labels []sdk.MetricLabel) bool {
		if k, ok := kinds[name]; ok && k != kind {
			return false
		}
		k := key(name, labels)
		if seen[k] {
			return false
		}
		kinds[name], seen[k] = kind, true
		return true
	}
	for _, m := range extra.Counters {
		if m.Labels = withInstance(m.Labels); admit(m.Name, counterKind, m.Labels) {
			snap.Counters = append(snap.Counters, m)
		}
	}
	for _, m := range extra.Gauges {
		if m.Labels = withInstance(m.Labels); admit(m.Name, gaugeKind, m.Labels) {
			snap.Gauges = append(snap.Gauges, m)
		}
	}
	for _, m := range extra.Histograms {
		if m.Labels = withInstance(m.Labels); admit(m.Name, histKind, m.Labels) {
			snap.Histograms = append(snap.Histograms, m)
		}
	}
}
