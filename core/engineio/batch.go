package engineio

import (
	"runtime"
	"sync"
	"unsafe"
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
// written at Flush. Through a nil *Batch it is Session.Send: written now.
func (b *Batch) Send(s *Session, msgs []*Message) bool { return s.send(msgs, b) }

// flushChunk is the fewest sessions worth a goroutine of their own during
// Flush: a write costs a few µs, a goroutine about one.
const flushChunk = 256

// splitMinProcs is the fewest cores (GOMAXPROCS) on which a large batch
// is split. Measured on 2 cores, with the load generator on the other one
// (bench/README.md, "The big-room path"): splitting a broadcast to 5,000
// cost as much CPU per delivery and multiplied its latency (p50 190 ms to
// 1.3 s against 48–250 ms in one pass), since the other core was never
// free; with 4 or more there is a core to spare more often than not.
const splitMinProcs = 4

// flushProcs is how many goroutines Flush would split n held sessions
// over (1: not split).
func flushProcs(n int) int {
	if n < 2*flushChunk {
		return 1
	}
	if p := runtime.GOMAXPROCS(0); p >= splitMinProcs {
		return min(p, n/flushChunk)
	}
	return 1
}

// SplitPays reports whether a broadcast to n WebSocket sessions is worth
// holding in a Batch so that Flush splits its writes over the cores. When
// it is not, the caller writes to each recipient as it goes (Send through a
// nil *Batch): one walk over the recipients instead of two.
func SplitPays(n int) bool { return flushProcs(n) > 1 }

// Flush writes what the held sessions queued. Large batches are split over
// the cores when there are enough of them (flushProcs); Flush returns when all are written (or handed to
// their writer goroutine), so successive batches stay in order.
func (b *Batch) Flush() {
	held := b.held
	if p := flushProcs(len(held)); p > 1 {
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
	for _, s := range held {
		s.flushHeld()
	}
	clear(b.held)
	b.held = b.held[:0]
}

// Len returns how many sessions wait for Flush.
func (b *Batch) Len() int { return len(b.held) }

// Prefetch starts loading, without waiting, the session's two cache lines
// that a Send to an idle WebSocket reads (Session's layout, srv to ws.fd):
// with the descriptor in them, the write touches nothing else of the
// session or its connection. A broadcast to a big room calls it for
// recipients a few places ahead of the one it writes to: each write is a
// system call of several µs whose kernel work evicts the recipients' lines,
// so without it every recipient costs its misses one after another
// (bench/README.md, "The big-room path").
func (s *Session) Prefetch() {
	prefetch2(unsafe.Pointer(s))
}

// Prefetch is prefetch for the structures in front of a session on the
// same path (the socket and client of core/socketio).
func Prefetch(p unsafe.Pointer) { prefetch(p) }
