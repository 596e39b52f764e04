package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// subHealthEvery is how long a quiet subscription waits before it PINGs;
// a PING unanswered for as long again replaces the connection.
const subHealthEvery = 3 * time.Second

// subBackoffMax caps the wait between reconnection attempts: short, so that
// subscriptions are back before publishers send their backlog (see
// resubscribeGrace). A refused dial is cheap.
const subBackoffMax = 250 * time.Millisecond

// subConn is one pub/sub connection read by our own loop instead of
// go-redis's Channel(): that loop sees the connection's errors (for
// Status), knows when Redis has confirmed a SUBSCRIBE (a request must not
// go out before its response channel is live) and replaces a connection
// whose PING goes unanswered. go-redis still reconnects and re-subscribes
// after errors by itself.
type subConn struct {
	rdb   *redis.Client
	what  string // the part of Status it reports, e.g. "subscription"
	met   *metrics
	onMsg func(*redis.Message) // called from run's goroutine, in order

	mu        sync.Mutex
	ps        *redis.PubSub
	closed    bool
	channels  map[string]struct{}
	patterns  map[string]struct{}
	confirmed map[string]struct{} // on the current connection
	changed   chan struct{}       // closed and replaced when confirmed grows
}

func newSubConn(rdb *redis.Client, what string, met *metrics, onMsg func(*redis.Message)) *subConn {
	return &subConn{
		rdb: rdb, what: what, met: met, onMsg: onMsg,
		ps:       rdb.Subscribe(context.Background()), // connects on first use
		channels: map[string]struct{}{}, patterns: map[string]struct{}{},
		confirmed: map[string]struct{}{}, changed: make(chan struct{}),
	}
}

// subscribe asks for channels. An error (Redis down) is not fatal: the
// channels are re-subscribed when the connection comes back.
func (s *subConn) subscribe(ctx context.Context, channels ...string) error {
	s.mu.Lock()
	for _, ch := range channels {
		s.channels[ch] = struct{}{}
	}
	ps := s.ps
	s.mu.Unlock()
	return ps.Subscribe(ctx, channels...)
}

func (s *subConn) psubscribe(ctx context.Context, patterns ...string) error {
	s.mu.Lock()
	for _, p := range patterns {
		s.patterns[p] = struct{}{}
	}
	ps := s.ps
	s.mu.Unlock()
	return ps.PSubscribe(ctx, patterns...)
}

func (s *subConn) unsubscribe(ctx context.Context, channels ...string) error {
	s.mu.Lock()
	for _, ch := range channels {
		delete(s.channels, ch)
		delete(s.confirmed, ch)
	}
	ps := s.ps
	s.mu.Unlock()
	return ps.Unsubscribe(ctx, channels...)
}

// waitConfirmed waits until Redis has confirmed the subscription of every
// name (channels or patterns) on the current connection.
func (s *subConn) waitConfirmed(ctx context.Context, names ...string) error {
	for {
		s.mu.Lock()
		missing := ""
		for _, n := range names {
			if _, ok := s.confirmed[n]; !ok {
				missing = n
				break
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if missing == "" {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("subscribing to %s: %w", missing, context.Cause(ctx))
		}
	}
}

func (s *subConn) isConfirmed(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.confirmed[name]
	return ok
}

func (s *subConn) confirm(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, wanted := s.channels[name]; !wanted {
		if _, wanted := s.patterns[name]; !wanted {
			return // a late confirmation of something since unsubscribed
		}
	}
	s.confirmed[name] = struct{}{}
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *subConn) lost() {
	s.mu.Lock()
	clear(s.confirmed)
	s.mu.Unlock()
}

// replace swaps in a new connection with the same subscriptions.
func (s *subConn) replace() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	old := s.ps
	s.ps = s.rdb.Subscribe(context.Background())
	clear(s.confirmed)
	ps, channels, patterns := s.ps, keys(s.channels), keys(s.patterns)
	s.mu.Unlock()
	_ = old.Close()
	ctx, cancel := context.WithTimeout(context.Background(), subHealthEvery)
	defer cancel()
	if len(channels) > 0 {
		_ = ps.Subscribe(ctx, channels...)
	}
	if len(patterns) > 0 {
		_ = ps.PSubscribe(ctx, patterns...)
	}
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// close ends run and the connection.
func (s *subConn) close() {
	s.mu.Lock()
	s.closed = true
	ps := s.ps
	s.mu.Unlock()
	_ = ps.Close()
}

// run reads the connection until ctx ends (then it closes it), reporting
// its health as s.what in Status.
func (s *subConn) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, s.close) // unblocks a pending read
	defer stop()
	defer s.met.setDown(s.what, nil)
	backoff := backoffMin
	pinged, down := false, false
	setDown := func(err error) {
		s.met.setDown(s.what, err)
		down = true
	}
	for ctx.Err() == nil {
		s.mu.Lock()
		ps, closed := s.ps, s.closed
		s.mu.Unlock()
		if closed {
			return
		}
		msg, err := ps.ReceiveTimeout(ctx, subHealthEvery)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !pinged {
					pinged = true
					_ = ps.Ping(ctx) // a write error shows on the next read
					continue
				}
				setDown(fmt.Errorf("no answer to PING within %v", subHealthEvery))
				s.replace()
				pinged = false
				continue
			}
			s.lost()
			setDown(redisCause(err))
			pinged = false
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, subBackoffMax)
			continue
		}
		backoff, pinged = backoffMin, false
		if down { // the lock of setDown only on a change
			s.met.setDown(s.what, nil)
			down = false
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "psubscribe" {
				s.confirm(m.Channel)
			}
		case *redis.Message:
			s.onMsg(m)
		}
	}
}
