package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/sdk"
)

// Outgoing queue bounds. A batch is one pipeline: one round trip.
const (
	maxFlushMessages = 256
	maxFlushBytes    = 8 << 20
	flushAttempt     = 10 * time.Second // bound of one pipeline, dial included
	backoffMin       = 50 * time.Millisecond
	backoffMax       = time.Second
	maxLateErrors    = 8 // encoding errors kept for the next Publish call
	// After the connection to Redis was lost, the backlog waits until as
	// many subscribers as before are back (at most resubscribeWait): every
	// server's subscriptions reconnect on their own schedule, and Redis
	// pub/sub keeps nothing for a subscriber that is not back yet. The count
	// is sampled at most every subscribersEvery while publishing works.
	resubscribeWait  = 3 * time.Second
	subscribersEvery = 2 * time.Second
)

// outQueue holds outgoing broadcasts so that Publish never waits for, or
// fails with, Redis. One writer goroutine drains it in batches into flush;
// a batch Redis refuses is retried with backoff while newer messages wait.
// When full, new messages are dropped and counted.
type outQueue struct {
	flush func(ctx context.Context, batch []sdk.AdapterMessage, skipped func(error)) error
	// subscribers counts the subscribers broadcasts go to (e.g. PUBSUB
	// NUMPAT), without publishing; nil: retry flush at once, no wait.
	subscribers func(ctx context.Context) (int64, error)
	seen        int64     // subscribers at the last sample
	seenAt      time.Time // of the last sample
	met         *metrics
	limit       int

	mu       sync.Mutex
	pending  []sdk.AdapterMessage // oldest first; not yet taken by the writer
	inFlight int                  // taken by the writer, not yet accepted by Redis
	late     []error              // encoding errors found by flush, for the next Publish
	lateMore int                  // beyond maxLateErrors
	closing  bool

	wake   chan struct{} // cap 1: something was queued, or closing
	ctx    context.Context
	cancel context.CancelFunc // stops the writer, even mid-retry
	done   chan struct{}
}

// newOutQueue starts the writer. subscribers, when not nil, counts the
// subscribers on Redis (see outQueue).
func newOutQueue(limit int, met *metrics, flush func(context.Context, []sdk.AdapterMessage, func(error)) error, subscribers func(context.Context) (int64, error)) *outQueue {
	ctx, cancel := context.WithCancel(context.Background())
	q := &outQueue{flush: flush, subscribers: subscribers, met: met, limit: limit, wake: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go q.run()
	return q
}

// add queues what fits and returns how many were dropped. The messages are
// kept by reference: the caller must not modify them afterwards.
func (q *outQueue) add(batch []sdk.AdapterMessage) (dropped int) {
	q.mu.Lock()
	if q.closing {
		q.mu.Unlock()
		q.met.droppedClose.Add(uint64(len(batch)))
		return len(batch)
	}
	room := q.limit - len(q.pending) - q.inFlight
	n := min(max(room, 0), len(batch))
	q.pending = append(q.pending, batch[:n]...)
	q.met.queued.Add(int64(n))
	q.mu.Unlock()
	if dropped = len(batch) - n; dropped > 0 {
		q.met.droppedFull.Add(uint64(dropped))
	}
	if n > 0 {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return dropped
}

// lateErrors returns (and forgets) the encoding errors flush reported since
// the last call.
func (q *outQueue) lateErrors() []error {
	q.mu.Lock()
	defer q.mu.Unlock()
	errs := q.late
	if q.lateMore > 0 {
		errs = append(errs, fmt.Errorf("and %d more messages that could not be encoded", q.lateMore))
	}
	q.late, q.lateMore = nil, 0
	return errs
}

// take moves up to one batch from pending to the writer.
func (q *outQueue) take(buf []sdk.AdapterMessage) ([]sdk.AdapterMessage, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return buf, q.closing
	}
	size := 0
	n := 0
	for n < len(q.pending) && n < maxFlushMessages {
		m := &q.pending[n]
		size += len(m.Data)
		for _, a := range m.Attachments {
			size += len(a)
		}
		if n > 0 && size > maxFlushBytes {
			break
		}
		n++
	}
	buf = append(buf, q.pending[:n]...)
	clear(q.pending[:n]) // drop references so published payloads can be collected
	q.pending = q.pending[n:]
	if len(q.pending) == 0 {
		q.pending = q.pending[:0:0]
	}
	q.inFlight = n
	return buf, false
}

func (q *outQueue) run() {
	defer close(q.done)
	batch := make([]sdk.AdapterMessage, 0, maxFlushMessages)
	for {
		var closing bool
		batch, closing = q.take(batch[:0])
		if len(batch) == 0 {
			if closing {
				return
			}
			select {
			case <-q.wake:
			case <-q.ctx.Done():
				return
			}
			continue
		}
		if !q.send(batch) {
			return
		}
		clear(batch)
	}
}

// send publishes one batch, retrying until Redis takes it; false when the
// queue was stopped first (the batch is then counted as dropped).
func (q *outQueue) send(batch []sdk.AdapterMessage) bool {
	backoff := backoffMin
	// lost: a flush failed on the connection (not a Redis error reply):
	// Redis probably went away, and the subscribers' connections with it.
	failed, lost := false, false
	for {
		if failed && q.subscribers != nil {
			ctx, cancel := context.WithTimeout(q.ctx, flushAttempt)
			_, err := q.subscribers(ctx)
			cancel()
			if err != nil {
				if !q.retryAfter(err, batch, &backoff) {
					return false
				}
				continue
			}
			if lost {
				q.awaitSubscribers()
			}
			failed, lost = false, false
		}
		// Skipped messages are only counted once Redis took the batch, so
		// that retries do not count them again.
		var skippedErrs []error
		skipped := 0
		ctx, cancel := context.WithTimeout(q.ctx, flushAttempt)
		err := q.flush(ctx, batch, func(err error) {
			if skipped++; len(skippedErrs) < maxLateErrors {
				skippedErrs = append(skippedErrs, err)
			}
		})
		cancel()
		if err == nil {
			q.sample()
			q.met.setDown("publish", nil)
			q.met.invalid.Add(uint64(skipped))
			q.met.published.Add(uint64(len(batch) - skipped))
			q.mu.Lock()
			for _, e := range skippedErrs {
				if len(q.late) < maxLateErrors {
					q.late = append(q.late, e)
				} else {
					q.lateMore++
				}
			}
			q.lateMore += skipped - len(skippedErrs)
			q.mu.Unlock()
			q.done1(len(batch))
			return true
		}
		var reply redis.Error
		failed, lost = true, lost || !errors.As(err, &reply)
		if !q.retryAfter(err, batch, &backoff) {
			return false
		}
	}
}

// sample counts the subscribers now and then while publishing works.
func (q *outQueue) sample() {
	if q.subscribers == nil || time.Since(q.seenAt) < subscribersEvery {
		return
	}
	ctx, cancel := context.WithTimeout(q.ctx, flushAttempt)
	defer cancel()
	if n, err := q.subscribers(ctx); err == nil {
		q.seen, q.seenAt = n, time.Now()
	}
}

// awaitSubscribers waits, once Redis answers again, until as many
// subscribers as last seen are back, at most resubscribeWait.
func (q *outQueue) awaitSubscribers() {
	deadline := time.Now().Add(resubscribeWait)
	for time.Now().Before(deadline) && q.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(q.ctx, time.Second)
		n, err := q.subscribers(ctx)
		cancel()
		if err == nil && n >= q.seen {
			return
		}
		select {
		case <-time.After(backoffMin):
		case <-q.ctx.Done():
		}
	}
}

// retryAfter reports err in the status and waits the backoff; false when
// the queue was stopped (the batch is then counted as dropped).
func (q *outQueue) retryAfter(err error, batch []sdk.AdapterMessage, backoff *time.Duration) bool {
	if q.ctx.Err() != nil {
		q.met.droppedClose.Add(uint64(len(batch)))
		q.done1(len(batch))
		return false
	}
	q.mu.Lock()
	queued := len(q.pending) + q.inFlight
	q.mu.Unlock()
	q.met.setDown("publish", fmt.Errorf("%w (%d messages queued)", redisCause(err), queued))
	select {
	case <-time.After(*backoff):
	case <-q.ctx.Done():
	}
	*backoff = min(*backoff*2, backoffMax)
	return true
}

func (q *outQueue) done1(n int) {
	q.mu.Lock()
	q.inFlight = 0
	q.mu.Unlock()
	q.met.queued.Add(-int64(n))
}

// close publishes what is queued, waiting at most bound, then stops the
// writer; what is left is dropped and counted.
func (q *outQueue) close(bound time.Duration) {
	q.mu.Lock()
	q.closing = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case <-q.done:
	case <-t.C:
	}
	q.cancel()
	<-q.done
	q.mu.Lock()
	left := len(q.pending)
	q.pending = nil
	q.mu.Unlock()
	if left > 0 {
		q.met.droppedClose.Add(uint64(left))
		q.met.queued.Add(-int64(left))
	}
	q.met.setDown("publish", nil)
}
