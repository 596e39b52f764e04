// Package lifecycle is what an instance does about its own health: memory
// monitoring and load shedding, readiness, and draining at shutdown.
package lifecycle

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
)

// MemoryStats is one memory sample, in bytes.
type MemoryStats struct {
	RSS       uint64 // resident set size of the process
	HeapTotal uint64 // heap memory obtained from the OS and not returned
	HeapUsed  uint64 // bytes in live and not-yet-swept heap objects
	// HeapLive is the heap the last collection found reachable: what
	// shedding decides on. HeapUsed also counts garbage not yet collected,
	// so an attacker's short-lived allocations (or a burst already over)
	// would otherwise keep the instance refusing handshakes until the next
	// GC cycle.
	HeapLive uint64
	Limit    uint64 // the limit percentages refer to (cgroup or physical memory)
}

// Memory samples the process's memory and decides load shedding. Sampling
// uses runtime/metrics and /proc, which do not stop the world, so a short
// interval is cheap.
type Memory struct {
	cfg  atomic.Pointer[config.LoadShedding] // nil = never shed; a reload replaces it
	log  *logrus.Entry
	last atomic.Pointer[MemoryStats]

	shedding  atomic.Bool
	Crossings atomic.Int64 // times the threshold was crossed upwards
	Rejected  atomic.Int64 // handshakes refused while shedding
	limit     atomic.Uint64
	changed   chan struct{} // SetLoadShedding tells Run
	samples   []metrics.Sample
}

// NewMemory returns a monitor; cfg may be nil (report only).
func NewMemory(cfg *config.LoadShedding, log *logrus.Entry) *Memory {
	m := &Memory{log: log, changed: make(chan struct{}, 1), samples: []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}}
	m.setConfig(cfg)
	m.Sample()
	return m
}

func (m *Memory) setConfig(cfg *config.LoadShedding) {
	m.cfg.Store(cfg)
	if cfg != nil && cfg.Limit > 0 {
		m.limit.Store(uint64(cfg.Limit))
	} else {
		m.limit.Store(memoryLimit())
	}
}

// SetLoadShedding replaces the thresholds (a config reload): the next
// sample is judged by them, and Run checks at the new interval.
func (m *Memory) SetLoadShedding(cfg *config.LoadShedding) {
	m.setConfig(cfg)
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Shedding reports whether new handshakes are being refused.
func (m *Memory) Shedding() bool { return m.shedding.Load() }

// Last returns the latest sample.
func (m *Memory) Last() MemoryStats { return *m.last.Load() }

// Sample reads memory now and updates the shedding state.
func (m *Memory) Sample() MemoryStats {
	metrics.Read(m.samples)
	objects := m.samples[0].Value.Uint64()
	st := MemoryStats{
		HeapUsed:  objects,
		HeapLive:  m.samples[3].Value.Uint64(),
		HeapTotal: objects + m.samples[1].Value.Uint64() + m.samples[2].Value.Uint64(),
		RSS:       readRSS(),
		Limit:     m.limit.Load(),
	}
	m.last.Store(&st)
	if c := m.cfg.Load(); c.Enabled() {
		over, why := m.over(c, st)
		if over != m.shedding.Load() {
			m.shedding.Store(over)
			f := logrus.Fields{"rss": st.RSS, "heap_live": st.HeapLive, "heap_used": st.HeapUsed, "heap_total": st.HeapTotal, "limit": st.Limit}
			if over {
				m.Crossings.Add(1)
				m.log.WithFields(f).WithField("reason", why).Warn("memory pressure: shedding new connections")
			} else {
				m.log.WithFields(f).Info("memory pressure over: accepting new connections")
			}
		}
	}
	return st
}

func (m *Memory) over(c *config.LoadShedding, st MemoryStats) (bool, string) {
	pct := func(p float64) uint64 { return uint64(p / 100 * float64(st.Limit)) }
	switch {
	case c.MaxHeap > 0 && st.HeapLive > uint64(c.MaxHeap):
		return true, "heap above max_heap"
	case c.MaxHeapPercent > 0 && st.Limit > 0 && st.HeapLive > pct(c.MaxHeapPercent):
		return true, "heap above max_heap % of limit"
	case c.MaxRSS > 0 && st.RSS > uint64(c.MaxRSS):
		return true, "rss above max_rss"
	case c.MaxRSSPercent > 0 && st.Limit > 0 && st.RSS > pct(c.MaxRSSPercent):
		return true, "rss above max_rss % of limit"
	}
	return false, ""
}

// RetryAfter is the Retry-After sent with a shed handshake, in seconds.
func (m *Memory) RetryAfter() int {
	c := m.cfg.Load()
	if c == nil {
		return 0
	}
	return int((c.RetryAfter + time.Second - 1) / time.Second)
}

// Run samples every check interval and logs a memory report every report
// interval (0 = no report) until ctx is done.
func (m *Memory) Run(ctx context.Context, report time.Duration) {
	var checkC, reportC <-chan time.Time
	var checkT *time.Ticker
	setCheck := func() {
		check := time.Duration(0)
		if c := m.cfg.Load(); c.Enabled() {
			check = c.CheckInterval
		}
		if checkT != nil {
			checkT.Stop()
			checkT, checkC = nil, nil
		}
		if check > 0 {
			checkT = time.NewTicker(check)
			checkC = checkT.C
		}
	}
	setCheck()
	defer func() {
		if checkT != nil {
			checkT.Stop()
		}
	}()
	if report > 0 {
		t := time.NewTicker(report)
		defer t.Stop()
		reportC = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.changed:
			setCheck()
		case <-checkC:
			m.Sample()
		case <-reportC:
			st := m.Sample()
			m.log.WithFields(logrus.Fields{"rss": st.RSS, "heap_total": st.HeapTotal, "heap_used": st.HeapUsed}).Info("memory usage")
		}
	}
}

// readRSS reads the resident set size from /proc/self/statm (0 elsewhere).
func readRSS() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// memoryLimit is the cgroup memory limit when one is set, else physical memory.
func memoryLimit() uint64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if b, err := os.ReadFile(p); err == nil {
			s := strings.TrimSpace(string(b))
			if v, err := strconv.ParseUint(s, 10, 64); err == nil && v > 0 && v < 1<<60 {
				return v
			}
		}
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseUint(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// SetThresholdsForTest replaces the heap threshold (tests only).
func (m *Memory) SetThresholdsForTest(maxHeap int64) {
	c := *m.cfg.Load()
	c.MaxHeap = maxHeap
	m.cfg.Store(&c)
}
