package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The collector's target follows the server's activity. A server of idle
// connections allocates little (a ping per connection every 25 s), so a
// tight target costs it almost nothing: collections are rare whatever
// the target, and each marks the same live heap. Under load (handshake
// storms, broadcasts) the CPU of the collector is inversely proportional
// to the target, so there it stays at Go's default. The resident memory
// of a Go heap is about (1 + GOGC/100) × live (plus the scavenger's
// 10%): at 100 an idle connection cost 2.2× its live heap; at rest it
// is 1.3×. bench/README.md, "Scale", has the measurements.
const (
	gcBusyPercent = 100 // Go's default
	gcRestPercent = 20
	gcTuneEvery   = 2 * time.Second
	// At rest: less than this fraction of the live heap allocated in one
	// interval (an idle 20,000-connection server allocates ~1%).
	gcRestAllocFraction = 0.10
)

// gcAtRest decides the target from one interval's allocation and the live
// heap: rest (true) when the interval allocated less than
// gcRestAllocFraction of the live heap.
func gcAtRest(allocated, live uint64) bool {
	return float64(allocated) < gcRestAllocFraction*float64(live)
}

// tuneGC runs until ctx ends; it does nothing when GOGC is set in the
// environment (the operator's choice wins; the caller checks).
func tuneGC(ctx context.Context) {
	samples := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	read := func() (uint64, uint64) {
		metrics.Read(samples)
		var a, l uint64
		if samples[0].Value.Kind() == metrics.KindUint64 {
			a = samples[0].Value.Uint64()
		}
		if samples[1].Value.Kind() == metrics.KindUint64 {
			l = samples[1].Value.Uint64()
		}
		return a, l
	}
	prev, _ := read()
	rest := false
	t := time.NewTicker(gcTuneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			debug.SetGCPercent(gcBusyPercent)
			return
		case <-t.C:
		}
		cur, live := read()
		now := gcAtRest(cur-prev, live)
		prev = cur
		if now == rest {
			continue
		}
		rest = now
		if rest {
			debug.SetGCPercent(gcRestPercent)
			// A new target takes effect at the next collection, and an
			// idle server may not start one for minutes (the runtime
			// forces one every 2); the scavenger then hands back what
			// the busy target had grown, slowly. One collection and
			// one hand-back now, once per change to rest.
			debug.FreeOSMemory()
		} else {
			debug.SetGCPercent(gcBusyPercent)
		}
	}
}
