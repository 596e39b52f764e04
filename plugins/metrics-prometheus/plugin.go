package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/socketfleet/socketfleet/sdk"
)

// contentType is the Prometheus text exposition format, version 0.0.4.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// reserved are label names the plugin's config may not set: the core sets
// instance on every series, environment has its own attribute, and le is a
// histogram's bucket label.
var reserved = []string{"instance", "environment", "le"}

type plugin struct {
	set atomic.Pointer[settings] // nil until Configure
}

var _ sdk.MetricsExporter = (*plugin)(nil)

// settings are the decoded config, immutable once stored.
type settings struct {
	prefix string            // "" or "<namespace_prefix>_"
	extra  []sdk.MetricLabel // environment and const_labels, sorted by name

	// descs caches checked descs by name, help and label names: the
	// series the core sends hardly change between scrapes.
	mu    sync.Mutex
	descs map[string]*prometheus.Desc
}

// maxDescs bounds the desc cache; it starts over when full.
const maxDescs = 10000

func (p *plugin) Info() sdk.Info {
	return sdk.Info{Kind: sdk.KindMetrics, Name: "prometheus", Version: "0.1.0", ProtocolVersion: sdk.ProtocolVersion}
}

func (p *plugin) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "environment", Type: sdk.TypeString, Description: `value of the environment label on every series; default "production", "" leaves the label out`},
		{Name: "namespace_prefix", Type: sdk.TypeString, Description: `prefix for every metric name, joined with "_" (e.g. "socketfleet")`},
		{Name: "const_labels", Type: sdk.TypeMapString, Description: "extra labels on every series (not instance, environment or le)"},
	}}
}

type config struct {
	Environment     *string           `json:"environment"`
	NamespacePrefix string            `json:"namespace_prefix"`
	ConstLabels     map[string]string `json:"const_labels"`
}

func (p *plugin) Configure(_ context.Context, raw sdk.Config) error {
	var c config
	if err := raw.Decode(&c); err != nil {
		return err
	}
	s := &settings{descs: map[string]*prometheus.Desc{}}
	if c.NamespacePrefix != "" {
		s.prefix = strings.TrimSuffix(c.NamespacePrefix, "_") + "_"
		if !model.LegacyValidation.IsValidMetricName(s.prefix) {
			return fmt.Errorf(`metrics "prometheus": namespace_prefix %q is not a valid metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*)`, c.NamespacePrefix)
		}
	}
	env := "production"
	if c.Environment != nil {
		env = *c.Environment
	}
	if env != "" {
		if !utf8.ValidString(env) {
			return errors.New(`metrics "prometheus": environment is not valid UTF-8`)
		}
		s.extra = append(s.extra, sdk.MetricLabel{Name: "environment", Value: env})
	}
	for name, value := range c.ConstLabels {
		switch {
		case !validLabelName(name):
			return fmt.Errorf(`metrics "prometheus": const_labels: %q is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__")`, name)
		case slices.Contains(reserved, name):
			return fmt.Errorf(`metrics "prometheus": const_labels: %q is reserved (the core sets instance; environment has its own attribute; le is the histogram bucket label)`, name)
		case !utf8.ValidString(value):
			return fmt.Errorf(`metrics "prometheus": const_labels: the value of %q is not valid UTF-8`, name)
		}
		s.extra = append(s.extra, sdk.MetricLabel{Name: name, Value: value})
	}
	slices.SortFunc(s.extra, func(a, b sdk.MetricLabel) int { return strings.Compare(a.Name, b.Name) })
	p.set.Store(s)
	return nil
}

var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Render builds const metrics from snap, gathers them through a fresh
// registry (which rejects duplicate series and a name used with two types
// or two help texts) and encodes them in the text format.
func (p *plugin) Render(_ context.Context, snap *sdk.MetricsSnapshot) (string, []byte, error) {
	s := p.set.Load()
	if s == nil {
		return "", nil, errors.New(`metrics "prometheus": not configured`)
	}
	if snap == nil {
		snap = &sdk.MetricsSnapshot{}
	}
	ms, err := s.metrics(snap)
	if err != nil {
		return "", nil, err
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(constCollector(ms)); err != nil {
		return "", nil, err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return "", nil, fmt.Errorf(`metrics "prometheus": %w`, err)
	}
	buf := bufs.Get().(*bytes.Buffer)
	defer bufs.Put(buf)
	buf.Reset()
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(buf, mf); err != nil {
			return "", nil, fmt.Errorf(`metrics "prometheus": encode %s: %w`, mf.GetName(), err)
		}
	}
	return contentType, bytes.Clone(buf.Bytes()), nil
}

// constCollector hands a registry metrics built beforehand. It describes
// nothing: an unchecked collector, whose metrics the registry still checks
// for consistency when gathering.
type constCollector []prometheus.Metric

func (constCollector) Describe(chan<- *prometheus.Desc) {}

func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c {
		ch <- m
	}
}

// metrics turns the snapshot into const metrics.
func (s *settings) metrics(snap *sdk.MetricsSnapshot) ([]prometheus.Metric, error) {
	out := make([]prometheus.Metric, 0, len(snap.Counters)+len(snap.Gauges)+len(snap.Histograms))
	for _, c := range snap.Counters {
		name := c.Name
		if !strings.HasSuffix(name, "_total") {
			name += "_total"
		}
		if c.Value < 0 || math.IsNaN(c.Value) {
			return nil, fmt.Errorf(`metrics "prometheus": counter %s: value %v is not a count`, c.Name, c.Value)
		}
		m, err := s.sample(name, c.Help, c.Labels, prometheus.CounterValue, c.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	for _, g := range snap.Gauges {
		m, err := s.sample(g.Name, g.Help, g.Labels, prometheus.GaugeValue, g.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	for i := range snap.Histograms {
		m, err := s.histogram(&snap.Histograms[i])
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *settings) sample(name, help string, labels []sdk.MetricLabel, vt prometheus.ValueType, v float64) (prometheus.Metric, error) {
	desc, values, err := s.desc(name, help, labels, false)
	if err != nil {
		return nil, err
	}
	m, err := prometheus.NewConstMetric(desc, vt, v, values...)
	if err != nil {
		return nil, fmt.Errorf(`metrics "prometheus": %s: %w`, name, err)
	}
	return m, nil
}

func (s *settings) histogram(h *sdk.MetricHistogram) (prometheus.Metric, error) {
	if len(h.Counts) != len(h.Bounds) {
		return nil, fmt.Errorf(`metrics "prometheus": histogram %s: %d counts for %d bounds`, h.Name, len(h.Counts), len(h.Bounds))
	}
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		switch {
		case math.IsNaN(b) || (i > 0 && b <= h.Bounds[i-1]):
			return nil, fmt.Errorf(`metrics "prometheus": histogram %s: bounds are not ascending`, h.Name)
		case (i > 0 && h.Counts[i] < h.Counts[i-1]) || h.Counts[i] > h.Count:
			return nil, fmt.Errorf(`metrics "prometheus": histogram %s: bucket counts are not cumulative`, h.Name)
		}
		buckets[b] = h.Counts[i]
	}
	desc, values, err := s.desc(h.Name, h.Help, h.Labels, true)
	if err != nil {
		return nil, err
	}
	m, err := prometheus.NewConstHistogram(desc, h.Count, h.Sum, buckets, values...)
	if err != nil {
		return nil, fmt.Errorf(`metrics "prometheus": %s: %w`, h.Name, err)
	}
	return m, nil
}

// desc checks the name and labels of a series (the core's labels plus the
// configured ones) and describes it; every label is variable, so one desc
// fits any label values. Checked descs are cached.
func (s *settings) desc(name, help string, labels []sdk.MetricLabel, histogram bool) (*prometheus.Desc, []string, error) {
	values := make([]string, 0, len(labels)+len(s.extra))
	var key strings.Builder
	key.Grow(len(name) + len(help) + 16*len(labels) + 2)
	key.WriteString(name)
	key.WriteByte(0)
	key.WriteString(help)
	for _, l := range labels {
		key.WriteByte(0)
		key.WriteString(l.Name)
		values = append(values, l.Value)
	}
	for _, l := range s.extra {
		values = append(values, l.Value)
	}
	if histogram {
		key.WriteString("\x00\x01")
	}
	k := key.String()
	s.mu.Lock()
	d := s.descs[k]
	s.mu.Unlock()
	if d != nil {
		return d, values, nil
	}
	d, err := s.newDesc(name, help, labels, histogram)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	if len(s.descs) >= maxDescs {
		clear(s.descs)
	}
	s.descs[k] = d
	s.mu.Unlock()
	return d, values, nil
}

func (s *settings) newDesc(name, help string, labels []sdk.MetricLabel, histogram bool) (*prometheus.Desc, error) {
	fq := s.prefix + name
	if !model.LegacyValidation.IsValidMetricName(fq) {
		return nil, fmt.Errorf(`metrics "prometheus": %q is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)`, fq)
	}
	if help == "" {
		help = fq
	}
	names := make([]string, 0, len(labels)+len(s.extra))
	add := func(l sdk.MetricLabel) error {
		switch {
		case !validLabelName(l.Name):
			return fmt.Errorf(`metrics "prometheus": %s: %q is not a valid label name`, fq, l.Name)
		case histogram && l.Name == "le":
			return fmt.Errorf(`metrics "prometheus": histogram %s: label "le" is the bucket label`, fq)
		case slices.Contains(names, l.Name):
			return fmt.Errorf(`metrics "prometheus": %s: label %q set twice (by the core and by the plugin's config?)`, fq, l.Name)
		}
		names = append(names, l.Name)
		return nil
	}
	for _, l := range labels {
		if err := add(l); err != nil {
			return nil, err
		}
	}
	for _, l := range s.extra {
		if err := add(l); err != nil {
			return nil, err
		}
	}
	return prometheus.NewDesc(fq, help, names, nil), nil
}

// validLabelName: the legacy charset, and not reserved for Prometheus
// ("__" prefix).
func validLabelName(n string) bool {
	return model.LegacyValidation.IsValidLabelName(n) && !strings.HasPrefix(n, "__")
}
