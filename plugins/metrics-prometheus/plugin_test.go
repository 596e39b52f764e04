package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

var raceEnabled bool // set by race_test.go

// coreSnapshot resembles what core/server/plugins.go sends: every series
// labelled instance, counters ending in _total, a histogram per plugin.
// extraNamespaces adds four counters each (to reach ~100 series).
func coreSnapshot(instance string, extraNamespaces int) *sdk.MetricsSnapshot {
	inst := sdk.MetricLabel{Name: "instance", Value: instance}
	l := func(kv ...string) []sdk.MetricLabel {
		out := []sdk.MetricLabel{inst}
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, sdk.MetricLabel{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	s := &sdk.MetricsSnapshot{}
	g := func(name, help string, v float64, kv ...string) {
		s.Gauges = append(s.Gauges, sdk.MetricSample{Name: name, Help: help, Labels: l(kv...), Value: v})
	}
	c := func(name, help string, v float64, kv ...string) {
		s.Counters = append(s.Counters, sdk.MetricSample{Name: name, Help: help, Labels: l(kv...), Value: v})
	}
	g("socket_connections_active", "Open Engine.IO connections.", 7)
	g("socket_sockets_active", "Connected namespace sockets.", 9)
	g("memory_usage_rss_bytes", "Resident set size.", 52428800)
	g("instance_draining", "1 while the instance drains.", 0)
	c("socket_connections_opened_total", "Engine.IO connections opened.", 12)
	for _, r := range []string{"transport_close", "ping_timeout", "server_shutdown"} {
		c("socket_connections_closed_total", "Engine.IO connections closed, by reason.", 1, "reason", r)
	}
	for _, r := range []string{"unknown_transport", "bad_request", "auth_refused", "wrong_shard", "load_shedding"} {
		c("socket_handshake_failures_total", "Handshakes and CONNECTs refused, by reason.", 2, "reason", r)
	}
	c("socket_broadcasts_total", "Broadcasts.", 3)
	for i := 0; i <= extraNamespaces; i++ {
		ns := "/"
		if i > 0 {
			ns = fmt.Sprintf("/room-%d", i)
		}
		c("socket_messages_received_total", "Events received, by namespace.", float64(10+i), "namespace", ns)
		c("socket_received_bytes_total", "Bytes of events received, by namespace.", 1000, "namespace", ns)
		c("socket_messages_sent_total", "Packets queued to clients (per recipient), by namespace.", 20, "namespace", ns)
		c("socket_sent_bytes_total", "Bytes queued to clients (per recipient), by namespace.", 2000, "namespace", ns)
	}
	for _, p := range []string{"auth.jwt", "metrics.prometheus"} {
		c("plugin_restarts_total", "Plugin restarts.", 0, "plugin", p)
		s.Histograms = append(s.Histograms, sdk.MetricHistogram{
			Name: "plugin_call_duration_seconds", Help: "Latency of calls into plugins.", Labels: l("plugin", p),
			Bounds: []float64{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1},
			Counts: []uint64{3, 10, 40, 41, 41, 42, 42, 42}, Count: 43, Sum: 0.912,
		})
	}
	return s
}

func configured(t testing.TB, cfg string) *plugin {
	t.Helper()
	p := &plugin{}
	if err := p.Configure(context.Background(), sdk.Config(cfg)); err != nil {
		t.Fatalf("Configure(%s): %v", cfg, err)
	}
	return p
}

func render(t testing.TB, p sdk.MetricsExporter, snap *sdk.MetricsSnapshot) []byte {
	t.Helper()
	ct, body, err := p.Render(context.Background(), snap)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
	return body
}

func parse(t testing.TB, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, body)
	}
	return mfs
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// promtoolCheck runs `promtool check metrics` on body; a missing promtool
// follows testkit's tool rule (CI installs Debian's prometheus package).
func promtoolCheck(t *testing.T, body []byte) {
	t.Helper()
	path := testkit.Need(t, "promtool")[0]
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("promtool not runnable: %v", err)
		}
		t.Fatalf("promtool check metrics refused the exposition: %v\n%s\n--- exposition ---\n%s", err, out, body)
	}
}

func TestExpositionPassesPromtoolAndParsesBack(t *testing.T) {
	p := configured(t, `{"environment":"test","const_labels":{"region":"eu-west-1","cluster":"blue"}}`)
	body := render(t, p, coreSnapshot("socket-a", 0))
	promtoolCheck(t, body)

	mfs := parse(t, body)
	want := map[string]string{"instance": "socket-a", "environment": "test", "region": "eu-west-1", "cluster": "blue"}
	for name, mf := range mfs {
		if mf.GetHelp() == "" {
			t.Errorf("%s: no HELP", name)
		}
		for _, m := range mf.GetMetric() {
			got := labelsOf(m)
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s%v: label %s = %q, want %q", name, got, k, got[k], v)
				}
			}
		}
	}
	check := func(name string, typ dto.MetricType, help string, n int) *dto.MetricFamily {
		t.Helper()
		mf := mfs[name]
		if mf == nil {
			t.Fatalf("%s missing from\n%s", name, body)
		}
		if mf.GetType() != typ || mf.GetHelp() != help || len(mf.GetMetric()) != n {
			t.Fatalf("%s: type %v help %q %d series; want %v %q %d", name, mf.GetType(), mf.GetHelp(), len(mf.GetMetric()), typ, help, n)
		}
		return mf
	}
	if v := check("socket_connections_active", dto.MetricType_GAUGE, "Open Engine.IO connections.", 1).Metric[0].GetGauge().GetValue(); v != 7 {
		t.Errorf("socket_connections_active = %v", v)
	}
	if v := check("socket_connections_opened_total", dto.MetricType_COUNTER, "Engine.IO connections opened.", 1).Metric[0].GetCounter().GetValue(); v != 12 {
		t.Errorf("socket_connections_opened_total = %v", v)
	}
	hf := check("socket_handshake_failures_total", dto.MetricType_COUNTER, "Handshakes and CONNECTs refused, by reason.", 5)
	reasons := map[string]float64{}
	for _, m := range hf.Metric {
		reasons[labelsOf(m)["reason"]] = m.GetCounter().GetValue()
	}
	if len(reasons) != 5 || reasons["wrong_shard"] != 2 {
		t.Errorf("handshake failures by reason: %v", reasons)
	}
	h := check("plugin_call_duration_seconds", dto.MetricType_HISTOGRAM, "Latency of calls into plugins.", 2).Metric[0].GetHistogram()
	if h.GetSampleCount() != 43 || h.GetSampleSum() != 0.912 || len(h.Bucket) < 8 {
		t.Fatalf("histogram: %v", h)
	}
	if b := h.Bucket[1]; b.GetUpperBound() != 0.001 || b.GetCumulativeCount() != 10 {
		t.Errorf("bucket 1: %v", b)
	}
	if !strings.Contains(string(body), `plugin_call_duration_seconds_bucket{`) || !strings.Contains(string(body), `le="+Inf"} 43`) {
		t.Errorf("no +Inf bucket with the total count:\n%s", body)
	}
}

func TestDefaultsPrefixAndCounterSuffix(t *testing.T) {
	p := configured(t, `{"namespace_prefix":"socketfleet"}`)
	snap := &sdk.MetricsSnapshot{
		Counters: []sdk.MetricSample{{Name: "widgets", Help: "Widgets.", Labels: []sdk.MetricLabel{{Name: "instance", Value: "i1"}}, Value: 2}},
		Gauges:   []sdk.MetricSample{{Name: "things", Labels: []sdk.MetricLabel{{Name: "instance", Value: "i1"}}, Value: 1}},
	}
	body := render(t, p, snap)
	promtoolCheck(t, body)
	mfs := parse(t, body)
	c := mfs["socketfleet_widgets_total"]
	if c == nil || c.GetType() != dto.MetricType_COUNTER || c.Metric[0].GetCounter().GetValue() != 2 {
		t.Fatalf("counter not renamed socketfleet_widgets_total:\n%s", body)
	}
	if got := labelsOf(c.Metric[0]); got["environment"] != "production" || got["instance"] != "i1" || len(got) != 2 {
		t.Errorf("labels %v, want instance and environment=production", got)
	}
	if g := mfs["socketfleet_things"]; g == nil || g.GetHelp() == "" {
		t.Errorf("gauge without help must get one:\n%s", body)
	}

	// environment = "" leaves the label out.
	body = render(t, configured(t, `{"environment":""}`), snap)
	if strings.Contains(string(body), "environment") {
		t.Errorf("environment label present:\n%s", body)
	}
	// An empty snapshot is a valid, empty exposition.
	if body := render(t, p, &sdk.MetricsSnapshot{}); len(body) != 0 {
		t.Errorf("empty snapshot: %q", body)
	}
}

func TestInvalidInputIsAnError(t *testing.T) {
	inst := []sdk.MetricLabel{{Name: "instance", Value: "i1"}}
	gauge := func(name string, labels ...sdk.MetricLabel) sdk.MetricSample {
		return sdk.MetricSample{Name: name, Help: "h", Labels: append(append([]sdk.MetricLabel{}, inst...), labels...), Value: 1}
	}
	for _, c := range []struct {
		name string
		snap sdk.MetricsSnapshot
		want string
	}{
		{"invalid metric name", sdk.MetricsSnapshot{Gauges: []sdk.MetricSample{gauge("bad-name")}}, "not a valid metric name"},
		{"utf-8 metric name", sdk.MetricsSnapshot{Gauges: []sdk.MetricSample{gauge("débit")}}, "not a valid metric name"},
		{"invalid label name", sdk.MetricsSnapshot{Gauges: []sdk.MetricSample{gauge("g", sdk.MetricLabel{Name: "a.b", Value: "x"})}}, "not a valid label name"},
		{"reserved label name", sdk.MetricsSnapshot{Gauges: []sdk.MetricSample{gauge("g", sdk.MetricLabel{Name: "__name__", Value: "x"})}}, "not a valid label name"},
		{"clash with environment", sdk.MetricsSnapshot{Gauges: []sdk.MetricSample{gauge("g", sdk.MetricLabel{Name: "environment", Value: "x"})}}, `"environment" set twice`},
		{"duplicate label", sdk.MetricsSnapshot{Gauges: []sdk.MetricSample{gauge("g", inst...)}}, `"instance" set twice`},
		{"duplicate series", sdk.MetricsSnapshot{Gauges: []sdk.MetricSample{gauge("g"), gauge("g")}}, "collected before"},
		{"two types", sdk.MetricsSnapshot{Gauges: []sdk.MetricSample{gauge("g_total")}, Counters: []sdk.MetricSample{gauge("g_total", sdk.MetricLabel{Name: "k", Value: "v"})}}, "g_total"},
		{"two helps", sdk.MetricsSnapshot{Gauges: []sdk.MetricSample{gauge("g"), {Name: "g", Help: "other", Labels: []sdk.MetricLabel{{Name: "k", Value: "v"}}}}}, "help"},
		{"negative counter", sdk.MetricsSnapshot{Counters: []sdk.MetricSample{{Name: "c_total", Help: "h", Value: -1}}}, "not a count"},
		{"NaN counter", sdk.MetricsSnapshot{Counters: []sdk.MetricSample{{Name: "c_total", Help: "h", Value: math.NaN()}}}, "not a count"},
		{"histogram counts", sdk.MetricsSnapshot{Histograms: []sdk.MetricHistogram{{Name: "h", Help: "h", Bounds: []float64{1, 2}, Counts: []uint64{1}, Count: 1}}}, "1 counts for 2 bounds"},
		{"histogram bounds", sdk.MetricsSnapshot{Histograms: []sdk.MetricHistogram{{Name: "h", Help: "h", Bounds: []float64{2, 1}, Counts: []uint64{1, 1}, Count: 1}}}, "not ascending"},
		{"histogram not cumulative", sdk.MetricsSnapshot{Histograms: []sdk.MetricHistogram{{Name: "h", Help: "h", Bounds: []float64{1, 2}, Counts: []uint64{2, 1}, Count: 2}}}, "not cumulative"},
		{"histogram le label", sdk.MetricsSnapshot{Histograms: []sdk.MetricHistogram{{Name: "h", Help: "h", Labels: []sdk.MetricLabel{{Name: "le", Value: "1"}}}}}, `"le"`},
		{"invalid label value", sdk.MetricsSnapshot{Gauges: []sdk.MetricSample{gauge("g", sdk.MetricLabel{Name: "k", Value: "\xff"})}}, "UTF-8"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := configured(t, `{"environment":"test"}`)
			_, body, err := p.Render(context.Background(), &c.snap)
			if err == nil {
				t.Fatalf("rendered:\n%s", body)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
	for _, cfg := range []string{
		`{"namespace_prefix":"9lives"}`, `{"namespace_prefix":"a-b"}`,
		`{"const_labels":{"instance":"x"}}`, `{"const_labels":{"environment":"x"}}`, `{"const_labels":{"le":"x"}}`,
		`{"const_labels":{"__x":"y"}}`, `{"const_labels":{"a-b":"y"}}`, `{"environment":3}`,
	} {
		if err := (&plugin{}).Configure(context.Background(), sdk.Config(cfg)); err == nil {
			t.Errorf("Configure(%s) accepted", cfg)
		}
	}
	if _, _, err := (&plugin{}).Render(context.Background(), coreSnapshot("i", 0)); err == nil {
		t.Error("Render before Configure succeeded")
	}
}

// A scrape of ~100 series must take well under a millisecond.
func TestRenderIsFast(t *testing.T) {
	p := configured(t, `{"environment":"test","const_labels":{"region":"eu"}}`)
	snap := coreSnapshot("socket-a", 20)
	series := len(snap.Counters) + len(snap.Gauges) + len(snap.Histograms)
	render(t, p, snap) // warm up
	const n = 300
	start := time.Now()
	for range n {
		render(t, p, snap)
	}
	per := time.Since(start) / n
	t.Logf("Render of %d series (%d histograms): %v per scrape (race detector: %v)", series, len(snap.Histograms), per, raceEnabled)
	limit := time.Millisecond
	if raceEnabled {
		limit = 10 * time.Millisecond
	}
	if per > limit {
		t.Errorf("Render took %v per scrape of %d series, want < %v", per, series, limit)
	}
}

func BenchmarkRender100(b *testing.B) {
	p := configured(b, `{"environment":"test","const_labels":{"region":"eu"}}`)
	snap := coreSnapshot("socket-a", 20)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := p.Render(context.Background(), snap); err != nil {
			b.Fatal(err)
		}
	}
}

func TestContractInProcess(t *testing.T) {
	p := plugintest.InProcess(t, &plugin{})
	cfg := sdk.Config(`{"environment":"test","namespace_prefix":"sf","const_labels":{"region":"eu"}}`)
	plugintest.CheckContract(t, p, plugintest.Options{Config: cfg})
	body := render(t, p.(sdk.MetricsExporter), coreSnapshot("socket-a", 0))
	promtoolCheck(t, body)
	if mf := parse(t, body)["sf_socket_connections_active"]; mf == nil || labelsOf(mf.Metric[0])["region"] != "eu" {
		t.Fatalf("through gRPC:\n%s", body)
	}
}

func TestContractSubprocess(t *testing.T) {
	bin := plugintest.Build(t, ".")
	p, cleanup := plugintest.Subprocess(t, bin, sdk.KindMetrics)
	defer cleanup()
	cfg := sdk.Config(`{"environment":"staging"}`)
	plugintest.CheckContract(t, p, plugintest.Options{Config: cfg})
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	m := p.(sdk.MetricsExporter)
	body := render(t, m, coreSnapshot("socket-b", 0))
	promtoolCheck(t, body)
	mf := parse(t, body)["socket_connections_active"]
	if mf == nil || labelsOf(mf.Metric[0])["environment"] != "staging" || mf.Metric[0].GetGauge().GetValue() != 7 {
		t.Fatalf("through the subprocess:\n%s", body)
	}
	bad := &sdk.MetricsSnapshot{Gauges: []sdk.MetricSample{{Name: "bad name", Help: "h", Value: 1}}}
	if _, _, err := m.Render(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "not a valid metric name") {
		t.Errorf("invalid name across the boundary: %v", err)
	}
}

// The example configuration in examples/prometheus is valid.
func TestExampleConfig(t *testing.T) {
	path := testkit.Need(t, "promtool")[0]
	cfg := filepath.Join("..", "..", "examples", "prometheus", "prometheus.yml")
	out, err := exec.Command(path, "check", "config", cfg).CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("promtool not runnable: %v", err)
		}
		t.Fatalf("promtool check config %s: %v\n%s", cfg, err, out)
	}
}
