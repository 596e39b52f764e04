package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is a latency histogram in microseconds, safe for concurrent use and
// allocation-free to record into: log-linear buckets, 64 per power of two
// (values below 64 µs exact, above within 1.6%), up to 2^40 µs.
type hist struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histBuckets = histSub + 35*histSub
)

func histBucket(us uint64) int {
	if us < histSub {
		return int(us)
	}
	e := bits.Len64(us) - histSubBits - 1 // us>>e is in [64, 128)
	i := histSub + e*histSub + int(us>>e) - histSub
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// histValue is the middle of bucket i, in µs.
func histValue(i int) float64 {
	if i < histSub {
		return float64(i)
	}
	e := (i - histSub) / histSub
	m := uint64(histSub + (i-histSub)%histSub)
	lo := m << e
	hi := (m+1)<<e - 1
	return (float64(lo) + float64(hi)) / 2
}

func (h *hist) record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.counts[histBucket(uint64(us))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// quantile returns the q-quantile (0 < q <= 1) in µs; 0 when empty.
func (h *hist) quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := histValue(i)
			if m := float64(h.max.Load()); v > m {
				v = m
			}
			return v
		}
	}
	return float64(h.max.Load())
}

// latencyStats are the figures every scenario reports, in milliseconds.
type latencyStats struct {
	P50, P90, P99, Max float64
	Count              uint64
}

func (h *hist) stats() latencyStats {
	return latencyStats{
		P50:   h.quantile(0.50) / 1000,
		P90:   h.quantile(0.90) / 1000,
		P99:   h.quantile(0.99) / 1000,
		Max:   float64(h.max.Load()) / 1000,
		Count: h.n.Load(),
	}
}
