package engineio

import (
	"runtime"
	"sync"
)

// Batch holds back the writes of many Sends so that each WebSocket gets
// one writev for all of them: a broadcast queues on every recipient and
// then writes, and a batch of broadcasts from other instances leaves in one
// system call per recipient instead of one per message. A Batch is used by
// one goroutine at a time, and every Send through it must be followed by
// Flush: until then the held sessions write nothing.
type Batch struct {
	held []*Session
}

// Send queues msgs on s as Session.Send does; an idle WebSocket session is
// written at Flush.
func (b *Batch) Send(s *Session, msgs []*Message) bool { return s.send(msgs, b) }

// flushChunk is the fewest sessions worth a goroutine of their own during
// Flush: a write costs a few µs, a goroutine about one.
const flushChunk = 256

// Flush writes what the held sessions queued. Large batches are split over
// the available cores; Flush returns when all are written (or handed to
// their writer goroutine), so successive batches stay in order.
func (b *Batch) Flush() {
	held := b.held
	if len(held) >= 2*flushChunk {
		if p := min(runtime.GOMAXPROCS(0), len(held)/flushChunk); p > 1 {
			size := (len(held) + p - 1) / p
			var wg sync.WaitGroup
			for i := size; i < len(held); i += size {
				part := held[i:min(i+size, len(held))]
				wg.Go(func() {
					for _, s := range part {
						s.flushHeld()
					}
				})
			}
			for _, s := range held[:size] {
				s.flushHeld()
			}
			wg.Wait()
			held = nil
		}
	}
	for _, s := range held {
		s.flushHeld()
	}
	clear(b.held)
	b.held = b.held[:0]
}

// Len returns how many sessions wait for Flush.
func (b *Batch) Len() int { return len(b.held) }
