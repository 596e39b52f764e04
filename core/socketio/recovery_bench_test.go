package socketio

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/sdk"
)

type nopStore struct{}

func (nopStore) Save(sdk.SessionChange) {}
func (nopStore) Restore(context.Context, string, string, string) (*sdk.RestoredSession, error) {
	return nil, sdk.ErrNoSession
}

// BenchmarkRecoveryJournal measures what recovery adds to a broadcast with
// no recipient (numbering, the offset appended, the journal) and the
// memory the replay buffer holds per 1,000 broadcasts of a 100-byte event.
func BenchmarkRecoveryJournal(b *testing.B) {
	data := []byte(`["chat",{"room":"r","text":"` + strings.Repeat("x", 70) + `"}]`)
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("recovery=%v", on), func(b *testing.B) {
			srv := NewServer(Options{})
			ns := srv.AddNamespace("/", nil, nil)
			const held = 10000 // the journal's steady state: full, evicting the oldest
			if on {
				srv.SetRecovery(&Recovery{Store: nopStore{},
					JournalAge: time.Hour, JournalEntries: held, JournalBytes: 1 << 40})
			}
			opts := rooms.Options{Rooms: []string{"r"}}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for i := 0; i < held; i++ {
				ns.BroadcastData(opts, data, nil)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ns.BroadcastData(opts, data, nil)
			}
			b.StopTimer()
			if on {
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/held*1000, "heapB/1000msgs")
			}
			runtime.KeepAlive(ns)
		})
	}
}
