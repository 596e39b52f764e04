// Package metrics is the metrics plugin kind. The core aggregates counters
// itself (atomics) and hands the plugin snapshots: per scrape, never per
// event.
package metrics

import (
	"context"

	"github.com/socketfleet/socketfleet/sdk"
)

// Label is a metric label.
type Label struct{ Name, Value string }

// Sample is one counter or gauge value.
type Sample struct {
	Name   string
	Help   string
	Labels []Label
	Value  float64
}

// Histogram is a cumulative histogram.
type Histogram struct {
	Name   string
	Help   string
	Labels []Label
	Bounds []float64 // upper bounds, ascending
	Counts []uint64  // cumulative counts per bound
	Count  uint64
	Sum    float64
}

// Snapshot is the core's metrics at one moment.
type Snapshot struct {
	Counters   []Sample
	Gauges     []Sample
	Histograms []Histogram
}

// Exporter is a metrics plugin.
type Exporter interface {
	sdk.Plugin
	// Render returns the exposition of snap (e.g. Prometheus text format)
	// and its content type; the core serves it at /metrics.
	Render(ctx context.Context, snap *Snapshot) (contentType string, body []byte, err error)
}
