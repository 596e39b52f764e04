package pluginhost

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/sdk"
)

// LinkOptions size a ClusterLink.
type LinkOptions struct {
	Queue    int           // outgoing messages held while the plugin is slow or down (default 10000)
	MaxBatch int           // messages per Publish (default 256)
	Linger   time.Duration // wait for more once one message is queued, in a burst (default 1ms); after a quiet spell the first message goes at once
	// MaxBatchBytes stops a batch growing past this many payload bytes
	// (default 16 MiB; a batch is one gRPC frame, at most sdk.MaxFrameSize).
	MaxBatchBytes int
}

// LinkStats are a link's counters.
type LinkStats struct {
	Sent     uint64 // messages published
	Batches  uint64 // Publish calls that succeeded
	Dropped  uint64 // messages dropped: queue full, or a batch that failed 3 times
	Received uint64 // messages from other instances handed to the Receive callback
	Queued   int    // messages waiting now
}

// Link is the core's side of the cluster over an adapter plugin: a bounded
// outgoing queue drained in batches into Publish, and one Subscribe stream,
// re-opened after every restart.
type Link struct {
	p   *Plugin
	out *batcher[sdk.AdapterMessage]

	deliver  atomic.Pointer[func([]sdk.AdapterMessage)]
	subOnce  sync.Once
	subDone  chan struct{}
	received atomic.Uint64
	closed   atomic.Bool
	cs       clusterState
	ss       sessionState
}

// ClusterLink starts a link over this adapter plugin.
func (p *Plugin) ClusterLink(opts LinkOptions) *Link {
	if opts.Queue <= 0 {
		opts.Queue = 10000
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Linger <= 0 {
		opts.Linger = time.Millisecond
	}
	if opts.MaxBatchBytes <= 0 || opts.MaxBatchBytes > sdk.MaxFrameSize/2 {
		opts.MaxBatchBytes = min(16<<20, sdk.MaxFrameSize/2)
	}
	l := &Link{p: p, subDone: make(chan struct{})}
	l.out = newBatcher(p, "cluster messages", opts.Queue, opts.MaxBatch, opts.Linger,
		func(ctx context.Context, batch []sdk.AdapterMessage) error {
			return p.call(ctx, "Publish", func(ctx context.Context, raw sdk.Plugin) error {
				a, ok := raw.(sdk.Adapter)
				if !ok {
					return wrongKind(p, raw, "sdk.Adapter")
				}
				return a.Publish(ctx, batch)
			})
		})
	l.out.maxBytes, l.out.size, l.out.eager = opts.MaxBatchBytes, messageSize, true
	l.out.start()
	return l
}

// Send queues m for the other instances. It never blocks: it returns false
// (and counts a drop) when the queue is full or the link closed.
func (l *Link) Send(m sdk.AdapterMessage) bool { return l.out.add(m) }

// Receive sets the callback for batches published by other instances (never
// called concurrently) and, the first time, opens the Subscribe stream.
func (l *Link) Receive(deliver func([]sdk.AdapterMessage)) {
	l.deliver.Store(&deliver)
	l.subOnce.Do(func() { go l.subscribe() })
}

// Failing reports whether the adapter plugin is up but its latest publish
// failed (e.g. it cannot reach Redis); it clears on the next success.
func (l *Link) Failing() bool { return l.out.failing.Load() }

// Stats returns the link's counters.
func (l *Link) Stats() LinkStats {
	return LinkStats{
		Sent:     l.out.sent.Load(),
		Batches:  l.out.batches.Load(),
		Dropped:  l.out.dropped.Load(),
		Received: l.received.Load(),
		Queued:   l.out.queued(),
	}
}

// Close publishes what is queued if the plugin is up (bounded by the
// plugin's CallTimeout), ends the Publish stream once the plugin has handled
// it (bounded likewise), closes the Subscribe stream and stops the link.
func (l *Link) Close() {
	if !l.closed.CompareAndSwap(false, true) {
		return
	}
	if l.ss.out != nil {
		l.ss.out.close(l.p.spec.CallTimeout) // the drain's saved sessions first
	}
	l.out.close(l.p.spec.CallTimeout)
	l.closePublishStream()
	l.subOnce.Do(func() { close(l.subDone) }) // never subscribed
	<-l.subDone
	l.cs.serveOnce.Do(func() {})
	if l.cs.serveDone != nil {
		<-l.cs.serveDone
	}
	l.cs.roomsOnce.Do(func() {})
	if l.cs.roomsDone != nil {
		<-l.cs.roomsDone
	}
}

// closePublishStream ends the sdk client's Publish stream (it implements
// io.Closer), which returns once the plugin has handled every batch sent,
// bounded by CallTimeout.
func (l *Link) closePublishStream() {
	inst := l.p.live()
	if inst == nil {
		return
	}
	c, ok := inst.raw.(io.Closer)
	if !ok {
		return
	}
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	t := time.NewTimer(l.p.spec.CallTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			l.p.log.WithField("error", err.Error()).Warn("adapter: closing the Publish stream")
		}
	case <-t.C:
		l.p.log.Warn("adapter: the plugin did not acknowledge the end of the Publish stream in time")
	}
}

// subscribe keeps one Subscribe stream open on the live process.
func (l *Link) subscribe() {
	defer close(l.subDone)
	l.keepOpen("Subscribe", func(ctx context.Context, raw sdk.Plugin) error {
		a, ok := raw.(sdk.Adapter)
		if !ok {
			l.p.log.Error(wrongKind(l.p, raw, "sdk.Adapter").Error())
			return sdk.ErrUnsupported
		}
		return a.Subscribe(ctx, func(batch []sdk.AdapterMessage) error {
			l.received.Add(uint64(len(batch)))
			if f := l.deliver.Load(); f != nil && *f != nil {
				(*f)(batch)
			}
			return nil
		})
	})
}

// keepOpen runs one long-lived stream call on the live process until the
// link closes: it ends the call when the process is declared dead, waits
// for the restart and calls again; a call that ends by itself is made again
// after a backoff. A call returning an error wrapping sdk.ErrUnsupported
// ends it for good.
func (l *Link) keepOpen(method string, call func(ctx context.Context, raw sdk.Plugin) error) {
	ctx := l.out.ctx // cancelled by Close and by host Close
	backoff := l.p.host.opts.BackoffMin
	for ctx.Err() == nil {
		inst, err := l.p.waitUp(ctx)
		if err != nil {
			return
		}
		sctx, cancel := context.WithCancel(ctx)
		go func() { // end the stream when this process is declared dead
			select {
			case <-inst.dead:
				cancel()
			case <-sctx.Done():
			}
		}()
		began := time.Now()
		err = call(sctx, inst.raw)
		cancel()
		if ctx.Err() != nil || errors.Is(err, sdk.ErrUnsupported) {
			return
		}
		if inst.isDead() {
			continue // waitUp waits for the restart
		}
		if time.Since(began) > backoffReset {
			backoff = l.p.host.opts.BackoffMin
		}
		l.p.log.WithFields(logrus.Fields{"error": errString(err), "retry_in": backoff}).Warn("adapter " + method + " stream ended; re-opening")
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, l.p.host.opts.BackoffMax)
	}
}

func errString(err error) string {
	if err == nil {
		return "stream closed by plugin"
	}
	return err.Error()
}

// messageSize estimates a message's encoded size.
func messageSize(m sdk.AdapterMessage) int {
	n := 16 + len(m.Namespace) + len(m.Data)
	for _, a := range m.Attachments {
		n += 4 + len(a)
	}
	for _, r := range m.Rooms {
		n += 4 + len(r)
	}
	for _, r := range m.Except {
		n += 4 + len(r)
	}
	return n
}
