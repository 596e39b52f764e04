// Command adapterloop is a test adapter plugin: every batch published is
// delivered back through Subscribe (held until a subscriber exists), each
// message tagged with the room "batch:<n>", n counting Publish calls in this
// process. A message in namespace "/block" makes Publish sleep 1s.
//
// Requests loop back too: Request hands the request to this process's own
// ServeRequests handler (one server expected) and returns its answers. The
// rooms reported through RoomsChanged are kept; Status is degraded while a
// room named "degraded" is held, and counts room changes as a metric.
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

	rooms    map[string]bool
	changes  int
	requests chan sdk.IncomingRequest
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

func (l *loop) Request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error) {
	answers := make(chan sdk.ClusterResponse, 16)
	in := sdk.IncomingRequest{ClusterRequest: req}
	if req.Type.Answered(req.WantAck) {
		in.Respond = func(r sdk.ClusterResponse) {
			select {
			case answers <- r:
			default:
			}
		}
	}
	select {
	case l.requests <- in:
	case <-ctx.Done():
		return sdk.RequestResult{}, ctx.Err()
	}
	if in.Respond == nil {
		return sdk.RequestResult{}, nil
	}
	wait := req.Timeout
	if wait <= 0 {
		wait = time.Second
	}
	select {
	case r := <-answers:
		answer(r)
		return sdk.RequestResult{Expected: 1, Answered: 1}, nil
	case <-time.After(wait):
		return sdk.RequestResult{Expected: 1}, nil
	}
}

func (l *loop) ServeRequests(ctx context.Context, namespaces []string, handle func(sdk.IncomingRequest)) error {
	for {
		select {
		case in := <-l.requests:
			handle(in)
		case <-ctx.Done():
			return nil
		}
	}
}

func (l *loop) RoomsChanged(_ context.Context, changes []sdk.RoomChange) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range changes {
		l.changes++
		if c.Created {
			l.rooms[c.Room] = true
		} else {
			delete(l.rooms, c.Room)
		}
	}
	return nil
}

func (l *loop) Status(context.Context) (sdk.Status, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := sdk.Status{Metrics: sdk.MetricsSnapshot{Gauges: []sdk.MetricSample{
		{Name: "loop_rooms", Help: "rooms held", Value: float64(len(l.rooms))},
	}}}
	if l.rooms["degraded"] {
		st.Degraded = "holding room degraded"
	}
	return st, nil
}

func main() {
	sdk.Serve(&loop{wake: make(chan struct{}, 1), rooms: map[string]bool{}, requests: make(chan sdk.IncomingRequest)})
}
