package pluginhost

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// batcher is a bounded queue drained by one goroutine into batch calls. It
// backs ClusterLink and LogBuffer.
//
// While the plugin is down (ErrUnavailable) the batch in hand waits for the
// restart and new items wait in the queue; the queue never grows past its
// capacity (overflow is dropped and counted). Other errors are retried
// maxAttempts times with a short backoff, then the batch is dropped and
// counted.
type batcher[T any] struct {
	p           *Plugin
	log         *logrus.Entry
	what        string // "cluster messages", "log entries"
	ch          chan T
	maxBatch    int
	maxBytes    int           // a batch stops growing at this encoded size (estimate)
	size        func(T) int   // estimated encoded size of one item; nil = 0
	wait        time.Duration // how long to wait for more once it has one
	maxAttempts int
	// eager sends the first item after a quiet spell at once instead of
	// waiting for company: at low rates (a chat message now and then) the
	// linger would only add latency; in a burst, items keep arriving while
	// a batch is sent, and the linger applies again.
	eager   bool
	send    func(ctx context.Context, batch []T) error
	onFlush func(ctx context.Context) error // after a Flush drained the queue; may be nil

	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	flushes chan flushReq
	closed  atomic.Bool
	once    sync.Once

	sent, batches, dropped, flushed atomic.Uint64
	inHand                          atomic.Int64
	// failing is set while the plugin is up but its sends fail (e.g. the
	// adapter plugin cannot reach Redis); the next success clears it.
	failing     atomic.Bool
	lastDropLog atomic.Int64 // unix nanos
}

type flushReq struct {
	ctx   context.Context
	reply chan error
}

func newBatcher[T any](p *Plugin, what string, queue, maxBatch int, wait time.Duration, send func(context.Context, []T) error) *batcher[T] {
	ctx, cancel := context.WithCancel(p.host.ctx)
	return &batcher[T]{
		p: p, log: p.log, what: what,
		ch: make(chan T, queue), maxBatch: maxBatch, maxBytes: math.MaxInt, wait: wait, maxAttempts: 3,
		send: send, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), flushes: make(chan flushReq),
	}
}

func (b *batcher[T]) start() { go b.run() }

// add never blocks. The bound counts the batch in hand too, so at most
// capacity items wait (give or take one per concurrent sender).
func (b *batcher[T]) add(v T) bool {
	if !b.closed.Load() && b.queued() < cap(b.ch) {
		select {
		case b.ch <- v:
			return true
		default:
		}
	}
	b.drop(1, "queue full")
	return false
}

func (b *batcher[T]) drop(n int, why string) {
	b.dropped.Add(uint64(n))
	// Log at most once a second: a full queue drops at the sender's rate.
	now := time.Now().UnixNano()
	last := b.lastDropLog.Load()
	if now-last >= int64(time.Second) && b.lastDropLog.CompareAndSwap(last, now) {
		b.log.WithFields(logrus.Fields{"dropped_total": b.dropped.Load(), "reason": why}).Warn("plugin queue: dropping " + b.what)
	}
}

func (b *batcher[T]) queued() int { return len(b.ch) + int(b.inHand.Load()) }

func (b *batcher[T]) run() {
	defer close(b.done)
	var (
		batch    = make([]T, 0, b.maxBatch)
		carry    []T // an item that would have overflowed the previous batch's bytes
		timer    = time.NewTimer(time.Hour)
		lastSent time.Time
	)
	timer.Stop()
	for {
		var fr *flushReq
		batch = batch[:0]
		if len(carry) > 0 {
			batch, carry = append(batch, carry[0]), carry[:0]
		} else {
			select {
			case <-b.ctx.Done():
				return
			case r := <-b.flushes:
				r.reply <- b.drain(r.ctx)
				continue
			case v := <-b.ch:
				batch = append(batch, v)
				b.inHand.Store(1)
			}
		}
		size := b.sizeOf(batch[0])
		// Take what is there, then wait up to b.wait for the rest of a batch
		// (unless eager and the link was quiet).
		quiet := b.eager && time.Since(lastSent) > b.wait
		timer.Reset(b.wait)
	fill:
		for len(batch) < b.maxBatch && size < b.maxBytes {
			var v T
			select {
			case v = <-b.ch:
			default:
				if quiet {
					break fill
				}
				select {
				case v = <-b.ch:
				case <-timer.C:
					break fill
				case r := <-b.flushes:
					fr = &r
					break fill
				case <-b.ctx.Done():
					break fill
				}
			}
			b.inHand.Add(1)
			if n := b.sizeOf(v); size+n > b.maxBytes {
				carry = append(carry, v)
				break
			} else {
				size += n
			}
			batch = append(batch, v)
		}
		timer.Stop()
		if fr != nil {
			fr.reply <- b.drain(fr.ctx, batch, carry)
			carry = carry[:0]
		} else {
			b.deliver(b.ctx, batch)
		}
		lastSent = time.Now()
		b.inHand.Store(int64(len(carry)))
		clear(batch)
	}
}

func (b *batcher[T]) sizeOf(v T) int {
	if b.size == nil {
		return 0
	}
	return b.size(v)
}

// deliver sends one batch, waiting for a restart while the plugin is down.
// It reports whether the batch was sent.
func (b *batcher[T]) deliver(ctx context.Context, batch []T) bool {
	defer b.inHand.Store(0)
	attempts := 0
	waited := false
	for {
		err := b.send(ctx, batch)
		if err == nil {
			b.failing.Store(false)
			b.sent.Add(uint64(len(batch)))
			b.batches.Add(1)
			if waited {
				b.log.WithField("queued", b.queued()).Info("plugin queue: plugin back, sending queued " + b.what)
			}
			return true
		}
		if ctx.Err() != nil {
			b.drop(len(batch), "closing: "+err.Error())
			return false
		}
		if errors.Is(err, ErrUnavailable) {
			if !waited {
				b.log.WithField("error", err.Error()).Warn("plugin queue: plugin down, holding " + b.what)
				waited = true
			}
			// Let the supervisor notice a death it has not seen yet.
			if !sleepCtx(ctx, 20*time.Millisecond) {
				continue
			}
			if _, err := b.p.waitUp(ctx); err != nil && ctx.Err() == nil {
				b.drop(len(batch), err.Error())
				return false
			}
			continue
		}
		b.failing.Store(true)
		attempts++
		if attempts >= b.maxAttempts {
			b.drop(len(batch), err.Error())
			b.log.WithFields(logrus.Fields{"error": err.Error(), "batch": len(batch), "attempts": attempts}).Error("plugin queue: dropping a batch of " + b.what)
			return false
		}
		if !sleepCtx(ctx, time.Duration(attempts)*100*time.Millisecond) {
			continue
		}
	}
}

// drain sends the batches in hand, if any, and everything queued now, then
// calls onFlush.
func (b *batcher[T]) drain(ctx context.Context, inHand ...[]T) error {
	ctx, cancel := mergeCtx(ctx, b.ctx)
	defer cancel()
	var failed bool
	for _, batch := range inHand {
		if len(batch) > 0 && !b.deliver(ctx, batch) {
			failed = true
		}
	}
	// Only what is queued now: senders that keep adding cannot stall a Flush.
	remaining := len(b.ch)
	batch := make([]T, 0, b.maxBatch)
	for ctx.Err() == nil && remaining > 0 {
		batch = batch[:0]
		size := 0
	take:
		for len(batch) < b.maxBatch && remaining > 0 && size < b.maxBytes {
			select {
			case v := <-b.ch:
				batch = append(batch, v)
				size += b.sizeOf(v)
				remaining--
			default:
				break take
			}
		}
		if len(batch) == 0 {
			break
		}
		b.inHand.Store(int64(len(batch)))
		if !b.deliver(ctx, batch) {
			failed = true
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	b.flushed.Add(1)
	if failed {
		return errors.New("plugin " + b.p.id + ": some " + b.what + " could not be sent and were dropped")
	}
	if b.onFlush != nil {
		return b.onFlush(ctx)
	}
	return nil
}

// flush asks the draining goroutine to send everything queued.
func (b *batcher[T]) flush(ctx context.Context) error {
	r := flushReq{ctx: ctx, reply: make(chan error, 1)}
	select {
	case b.flushes <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return errors.New("plugin " + b.p.id + ": queue closed")
	}
	select {
	case err := <-r.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops accepting, sends what is queued (bounded by timeout, and only
// if the plugin is up or comes back in time), then stops the goroutine.
// What is left is dropped and counted.
func (b *batcher[T]) close(timeout time.Duration) {
	b.once.Do(func() {
		b.closed.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		_ = b.flush(ctx)
		cancel()
		b.cancel()
		<-b.done
		if n := len(b.ch); n > 0 {
			for range n {
				<-b.ch
			}
			b.drop(n, "closed")
		}
	})
}

// mergeCtx returns a context done when either a or b is.
func mergeCtx(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() { stop(); cancel() }
}
