package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type handshakeResult struct {
	common
	Concurrency int  `json:"concurrency"`
	JWT         bool `json:"jwt"`
	// Counted in the measured window (after --warmup).
	Handshakes     uint64  `json:"handshakes"`
	Failed         uint64  `json:"failed"`
	HandshakesPerS float64 `json:"handshakes_per_s"`
	LatP50Ms       float64 `json:"lat_p50_ms"`
	LatP90Ms       float64 `json:"lat_p90_ms"`
	LatP99Ms       float64 `json:"lat_p99_ms"`
	LatMaxMs       float64 `json:"lat_max_ms"`
	// CPU per completed handshake.
	ServerCPUUsPerHandshake float64 `json:"server_cpu_us_per_handshake"`
	GenCPUUsPerHandshake    float64 `json:"gen_cpu_us_per_handshake"`
}

// runHandshake keeps c.inFlight handshakes going for warmup + duration:
// each worker connects (Engine.IO open, Socket.IO CONNECT with the token,
// CONNECT reply), disconnects and starts again.
func runHandshake(ctx context.Context, c *config) (any, string, error) {
	r := handshakeResult{common: newCommon("handshake", c), Concurrency: c.inFlight, JWT: c.jwtSecret != ""}
	auth, err := newTokenPool(c.jwtSecret, c.jwtAud)
	if err != nil {
		return nil, "", err
	}
	var (
		h        hist
		measured atomic.Bool
		ok, bad  atomic.Uint64
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	for w := 0; w < c.inFlight; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			url := c.urls[w%len(c.urls)]
			for runCtx.Err() == nil {
				t0 := time.Now()
				dctx, cancel := context.WithTimeout(runCtx, c.timeout)
				cl, err := dial(dctx, dialOptions{baseURL: url, path: c.path, transport: c.transport, auth: auth.next()})
				cancel()
				if runCtx.Err() != nil { // stopped mid-handshake: not counted
					if cl != nil {
						cl.close()
					}
					return
				}
				if err != nil {
					if measured.Load() {
						bad.Add(1)
						errOnce.Do(func() { r.FirstError = err.Error() })
					}
					continue
				}
				d := time.Since(t0)
				cl.close()
				if measured.Load() {
					ok.Add(1)
					h.record(d)
				}
			}
		}(w)
	}
	select {
	case <-time.After(c.warmup):
	case <-ctx.Done():
	}
	m := startMeters(c)
	measured.Store(true)
	select {
	case <-time.After(c.duration):
	case <-ctx.Done():
	}
	measured.Store(false)
	m.stop(&r.common)
	stop()
	wg.Wait()
	if ctx.Err() != nil {
		return nil, "", ctx.Err()
	}

	r.Handshakes, r.Failed = ok.Load(), bad.Load()
	if r.WindowS > 0 {
		r.HandshakesPerS = round(float64(r.Handshakes)/r.WindowS, 1)
	}
	st := h.stats()
	r.LatP50Ms, r.LatP90Ms, r.LatP99Ms, r.LatMaxMs = round(st.P50, 3), round(st.P90, 3), round(st.P99, 3), round(st.Max, 3)
	r.ServerCPUUsPerHandshake = perUnit(r.ServerCPUS, r.Handshakes)
	r.GenCPUUsPerHandshake = perUnit(r.GenCPUS, r.Handshakes)

	var b strings.Builder
	auth_ := "no auth"
	if r.JWT {
		auth_ = "JWT HS256"
	}
	fmt.Fprintf(&b, "handshake %s (%s, %s, %s): %d in flight for %s\n", c.name, c.label, c.transport, auth_, c.inFlight, c.duration)
	fmt.Fprintf(&b, "  handshakes  %d = %.0f/s, %d failed%s\n", r.Handshakes, r.HandshakesPerS, r.Failed, errNote(r.FirstError))
	fmt.Fprintf(&b, "  latency     p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", r.LatP50Ms, r.LatP90Ms, r.LatP99Ms, r.LatMaxMs)
	if len(c.serverPIDs) > 0 {
		fmt.Fprintf(&b, "  server CPU  %.2f s (%.0f%% of a core) = %.1f µs per handshake\n", r.ServerCPUS, r.ServerCPUPct, r.ServerCPUUsPerHandshake)
	}
	fmt.Fprintf(&b, "  generator   %.2f s CPU (%.0f%% of a core) = %.1f µs per handshake\n", r.GenCPUS, r.GenCPUPct, r.GenCPUUsPerHandshake)
	return r, b.String(), nil
}
