package lifecycle

import (
	"io"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
)

var sink [][]byte

// Garbage not yet collected must not make the instance shed load: an
// attacker's short-lived allocations (or a burst that is over) would keep
// every new handshake refused until the collector ran.
func TestSheddingDecidesOnLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no collection while garbage piles up
	runtime.GC()
	log := logrus.New()
	log.SetOutput(io.Discard)
	base := NewMemory(nil, logrus.NewEntry(log)).Sample()

	// 64 MB of garbage: allocated, then dropped, never collected.
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil

	cfg := &config.LoadShedding{MaxHeap: int64(base.HeapLive) + 32<<20}
	m := NewMemory(cfg, logrus.NewEntry(log))
	st := m.Sample()
	if st.HeapUsed < uint64(cfg.MaxHeap) {
		t.Skipf("the garbage did not pile up (heap used %d, threshold %d): nothing to check", st.HeapUsed, cfg.MaxHeap)
	}
	if m.Shedding() {
		t.Errorf("shedding with %d MB live and %d MB in use (threshold %d MB): garbage counted", st.HeapLive>>20, st.HeapUsed>>20, cfg.MaxHeap>>20)
	}

	// Live memory over the threshold does make it shed.
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
	}
	runtime.GC()
	if st := m.Sample(); !m.Shedding() {
		t.Errorf("not shedding with %d MB live (threshold %d MB)", st.HeapLive>>20, cfg.MaxHeap>>20)
	}
	sink = nil
}
