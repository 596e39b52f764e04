package plugintest

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/socketfleet/socketfleet/sdk"
)

// Loopback is an in-memory adapter plugin for tests: every batch published
// is delivered, as that same batch, to every Subscribe running at the time,
// in order. Publish waits while a subscriber's buffer is full.
type Loopback struct {
	buffer int

	mu   sync.Mutex
	subs map[*loopSub]struct{}

	publishes atomic.Uint64
	messages  atomic.Uint64
}

type loopSub struct {
	ch   chan []sdk.AdapterMessage
	done chan struct{}
}

var _ sdk.Adapter = (*Loopback)(nil)

// NewLoopback returns a Loopback holding up to 64 batches per subscriber.
func NewLoopback() *Loopback {
	return &Loopback{buffer: 64, subs: map[*loopSub]struct{}{}}
}

// Info names it adapter "loopback".
func (l *Loopback) Info() sdk.Info {
	return sdk.Info{Kind: sdk.KindAdapter, Name: "loopback", Version: "1.0.0", ProtocolVersion: sdk.ProtocolVersion}
}

// ConfigSchema has one optional attribute, buffer.
func (l *Loopback) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "buffer", Type: sdk.TypeNumber, Description: "batches held per subscriber before Publish waits (default 64)"},
	}}
}

// Configure reads buffer; it applies to later subscriptions.
func (l *Loopback) Configure(_ context.Context, cfg sdk.Config) error {
	var c struct {
		Buffer *int `json:"buffer"`
	}
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if c.Buffer != nil {
		l.mu.Lock()
		l.buffer = max(*c.Buffer, 0)
		l.mu.Unlock()
	}
	return nil
}

// Publish hands batch to every current subscriber.
func (l *Loopback) Publish(ctx context.Context, batch []sdk.AdapterMessage) error {
	l.publishes.Add(1)
	l.messages.Add(uint64(len(batch)))
	l.mu.Lock()
	subs := make([]*loopSub, 0, len(l.subs))
	for s := range l.subs {
		subs = append(subs, s)
	}
	l.mu.Unlock()
	for _, s := range subs {
		select {
		case s.ch <- batch:
		case <-s.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Subscribe delivers published batches until ctx ends (returning ctx.Err())
// or deliver fails (returning its error).
func (l *Loopback) Subscribe(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error {
	l.mu.Lock()
	s := &loopSub{ch: make(chan []sdk.AdapterMessage, l.buffer), done: make(chan struct{})}
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.subs, s)
		l.mu.Unlock()
		close(s.done)
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b := <-s.ch:
			if err := deliver(b); err != nil {
				return err
			}
		}
	}
}

// Publishes is the number of Publish calls so far: behind the boundary, the
// number of Publish stream frames received.
func (l *Loopback) Publishes() uint64 { return l.publishes.Load() }

// Messages is the number of messages published so far.
func (l *Loopback) Messages() uint64 { return l.messages.Load() }

// Subscribers is the number of Subscribe calls running.
func (l *Loopback) Subscribers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.subs)
}
