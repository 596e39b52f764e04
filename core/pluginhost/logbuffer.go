package pluginhost

import (
	"context"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

// BufferOptions size a LogBuffer.
type BufferOptions struct {
	Queue      int           // entries held (default 10000)
	MaxBatch   int           // entries per Write (default 500)
	FlushEvery time.Duration // longest an entry waits for its batch to fill (default 1s)
	// MaxBatchBytes stops a batch growing past this many bytes (default 16 MiB).
	MaxBatchBytes int
}

// BufferStats are a log buffer's counters.
type BufferStats struct {
	Written uint64 // entries written
	Batches uint64 // Write calls that succeeded
	Dropped uint64 // entries dropped: queue full, or a batch that failed 3 times
	Flushes uint64 // Flush calls that drained the queue
	Queued  int    // entries waiting now
}

// LogBuffer is a bounded queue of log entries in front of a log_sink plugin,
// written in batches.
type LogBuffer struct {
	p *Plugin
	b *batcher[sdk.LogEntry]
}

// LogBuffer starts a buffer over this log_sink plugin.
func (p *Plugin) LogBuffer(opts BufferOptions) *LogBuffer {
	if opts.Queue <= 0 {
		opts.Queue = 10000
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 500
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = time.Second
	}
	if opts.MaxBatchBytes <= 0 || opts.MaxBatchBytes > sdk.MaxFrameSize/2 {
		opts.MaxBatchBytes = min(16<<20, sdk.MaxFrameSize/2)
	}
	sink := func(raw sdk.Plugin) (sdk.LogSink, error) {
		s, ok := raw.(sdk.LogSink)
		if !ok {
			return nil, wrongKind(p, raw, "sdk.LogSink")
		}
		return s, nil
	}
	b := newBatcher(p, "log entries", opts.Queue, opts.MaxBatch, opts.FlushEvery,
		func(ctx context.Context, batch []sdk.LogEntry) error {
			return p.call(ctx, "Write", func(ctx context.Context, raw sdk.Plugin) error {
				s, err := sink(raw)
				if err != nil {
					return err
				}
				return s.Write(ctx, batch)
			})
		})
	b.maxBytes = opts.MaxBatchBytes
	b.size = func(e sdk.LogEntry) int { return 32 + len(e.Level) + len(e.Message) + len(e.Fields) }
	b.onFlush = func(ctx context.Context) error {
		return p.call(ctx, "Flush", func(ctx context.Context, raw sdk.Plugin) error {
			s, err := sink(raw)
			if err != nil {
				return err
			}
			return s.Flush(ctx)
		})
	}
	b.start()
	return &LogBuffer{p: p, b: b}
}

// Add queues e. It never blocks: false (and a drop counted) when full.
func (b *LogBuffer) Add(e sdk.LogEntry) bool { return b.b.add(e) }

// Flush writes everything queued, then calls the plugin's Flush (shutdown).
// While the plugin is down it waits for the restart, up to ctx.
func (b *LogBuffer) Flush(ctx context.Context) error { return b.b.flush(ctx) }

// Stats returns the buffer's counters.
func (b *LogBuffer) Stats() BufferStats {
	return BufferStats{
		Written: b.b.sent.Load(),
		Batches: b.b.batches.Load(),
		Dropped: b.b.dropped.Load(),
		Flushes: b.b.flushed.Load(),
		Queued:  b.b.queued(),
	}
}

// Close flushes (bounded by the plugin's CallTimeout) and stops the buffer.
func (b *LogBuffer) Close() { b.b.close(b.p.spec.CallTimeout) }
