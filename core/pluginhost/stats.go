package pluginhost

import (
	"sync/atomic"
	"time"
)

// LatencyBounds are the upper bounds, in seconds, of the call latency
// histogram in Stats.
var LatencyBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// Stats are a plugin's counters, for the core's metrics.
type Stats struct {
	Kind, Name string
	Up         bool
	Restarts   uint64 // successful restarts
	Calls      uint64 // calls that reached the process (latency observed)
	Errors     uint64 // calls that returned an error (not timeouts, not unavailable)
	Timeouts   uint64 // calls cut by CallTimeout
	// Unavailable counts calls refused or failed because the plugin was down.
	Unavailable uint64
	// Call latency: a cumulative histogram over LatencyBounds (seconds), plus
	// sum and count, the shape of sdk.MetricHistogram.
	LatencyCounts []uint64
	LatencySum    time.Duration
	LatencyCount  uint64
}

type callStats struct {
	restarts, errors, timeouts, unavailable atomic.Uint64
	count, sumNanos                         atomic.Uint64
	buckets                                 []atomic.Uint64 // non-cumulative; last = +Inf
}

func (s *callStats) init() { s.buckets = make([]atomic.Uint64, len(LatencyBounds)+1) }

func (s *callStats) observe(d time.Duration) {
	s.count.Add(1)
	s.sumNanos.Add(uint64(d))
	sec := d.Seconds()
	i := 0
	for i < len(LatencyBounds) && sec > LatencyBounds[i] {
		i++
	}
	s.buckets[i].Add(1)
}

// Stats returns the plugin's counters.
func (p *Plugin) Stats() Stats {
	st := p.State()
	s := &p.stats
	out := Stats{
		Kind: st.Kind, Name: st.Name, Up: st.Up,
		Restarts:      s.restarts.Load(),
		Calls:         s.count.Load(),
		Errors:        s.errors.Load(),
		Timeouts:      s.timeouts.Load(),
		Unavailable:   s.unavailable.Load(),
		LatencySum:    time.Duration(s.sumNanos.Load()),
		LatencyCounts: make([]uint64, len(LatencyBounds)),
	}
	var cum uint64
	for i := range LatencyBounds {
		cum += s.buckets[i].Load()
		out.LatencyCounts[i] = cum
	}
	out.LatencyCount = cum + s.buckets[len(LatencyBounds)].Load()
	return out
}
