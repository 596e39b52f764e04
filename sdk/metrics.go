// The metrics kind. The core aggregates counters itself (atomics) and hands
// the plugin snapshots: per scrape, never per event.

package sdk

import "context"

// MetricLabel is a metric label.
type MetricLabel struct{ Name, Value string }

// MetricSample is one counter or gauge value.
type MetricSample struct {
	Name   string
	Help   string
	Labels []MetricLabel
	Value  float64
}

// MetricHistogram is a cumulative histogram.
type MetricHistogram struct {
	Name   string
	Help   string
	Labels []MetricLabel
	Bounds []float64 // upper bounds, ascending
	Counts []uint64  // cumulative counts per bound
	Count  uint64
	Sum    float64
}

// MetricsSnapshot is the core's metrics at one moment.
type MetricsSnapshot struct {
	Counters   []MetricSample
	Gauges     []MetricSample
	Histograms []MetricHistogram
}

// MetricsExporter is a metrics plugin.
type MetricsExporter interface {
	Plugin
	// Render returns the exposition of snap (e.g. Prometheus text format)
	// and its content type; the core serves it at /metrics.
	Render(ctx context.Context, snap *MetricsSnapshot) (contentType string, body []byte, err error)
}
