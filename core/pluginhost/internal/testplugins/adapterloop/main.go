// Command adapterloop is a test adapter plugin: every batch published is
// delivered back through Subscribe (held until a subscriber exists), each
// message tagged with the room "batch:<n>", n counting Publish calls in this
// process. A message in namespace "/block" makes Publish sleep 1s.
package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

type loop struct {
	mu      sync.Mutex
	batches int
	pending [][]sdk.AdapterMessage
	wake    chan struct{}
}

func (l *loop) Info() sdk.Info {
	return sdk.Info{Kind: sdk.KindAdapter, Name: "loop", Version: "test", ProtocolVersion: sdk.ProtocolVersion}
}

func (l *loop) ConfigSchema() sdk.Schema                    { return sdk.Schema{} }
func (l *loop) Configure(context.Context, sdk.Config) error { return nil }

func (l *loop) Publish(ctx context.Context, batch []sdk.AdapterMessage) error {
	for _, m := range batch {
		if m.Namespace == "/block" {
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	l.mu.Lock()
	l.batches++
	tag := fmt.Sprintf("batch:%d", l.batches)
	out := make([]sdk.AdapterMessage, len(batch))
	for i, m := range batch {
		m.Rooms = append(append([]string(nil), m.Rooms...), tag)
		out[i] = m
	}
	l.pending = append(l.pending, out)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

func (l *loop) Subscribe(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error {
	for {
		l.mu.Lock()
		todo := l.pending
		l.pending = nil
		l.mu.Unlock()
		for i, b := range todo {
			if err := deliver(b); err != nil {
				l.mu.Lock()
				l.pending = append(todo[i:], l.pending...)
				l.mu.Unlock()
				return err
			}
		}
		select {
		case <-l.wake:
		case <-ctx.Done():
			return nil
		}
	}
}

func main() { sdk.Serve(&loop{wake: make(chan struct{}, 1)}) }
