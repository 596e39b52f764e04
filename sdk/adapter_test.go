package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// frameCounter counts, on the server side of the boundary, the stream frames
// of each method and the streams opened.
type frameCounter struct {
	recv, sent, streams sync.Map // full method -> *atomic.Int64
}

func (c *frameCounter) counter(m *sync.Map, method string) *atomic.Int64 {
	v, _ := m.LoadOrStore(method, new(atomic.Int64))
	return v.(*atomic.Int64)
}

func (c *frameCounter) get(m *sync.Map, method string) int64 { return c.counter(m, method).Load() }

func (c *frameCounter) option() grpc.ServerOption {
	return grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		c.counter(&c.streams, info.FullMethod).Add(1)
		return handler(srv, &countingStream{ServerStream: ss, recv: c.counter(&c.recv, info.FullMethod), sent: c.counter(&c.sent, info.FullMethod)})
	})
}

type countingStream struct {
	grpc.ServerStream
	recv, sent *atomic.Int64
}

func (s *countingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.recv.Add(1)
	}
	return err
}

func (s *countingStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		s.sent.Add(1)
	}
	return err
}

const (
	publishMethod   = "/socketfleet.plugin.v1.Adapter/Publish"
	subscribeMethod = "/socketfleet.plugin.v1.Adapter/Subscribe"
)

// chatMessage is a typical broadcast: an ~80-byte chat event to a room.
func chatMessage(i int) sdk.AdapterMessage {
	data := fmt.Appendf(nil, `["chat",{"from":"user-%04d","text":"hello everyone, how is it going?"}]`, i%10000)
	return sdk.AdapterMessage{Namespace: "/", Rooms: []string{"room-1"}, Data: data}
}

// subscribed starts Subscribe on a and waits until the loopback has it.
func subscribed(t testing.TB, a sdk.Adapter, lb *plugintest.Loopback, deliver func([]sdk.AdapterMessage) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Subscribe(ctx, deliver) }()
	deadline := time.Now().Add(5 * time.Second)
	for lb.Subscribers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Subscribe did not reach the plugin")
		}
		time.Sleep(time.Millisecond)
	}
	return func() error {
		cancel()
		return <-done
	}
}

// TestAdapterBatchesCrossAsFrames proves the boundary batches: N messages
// published in batches of B are N/B frames on the Publish stream and N/B
// frames on the Subscribe stream, on one stream each, and arrive intact.
func TestAdapterBatchesCrossAsFrames(t *testing.T) {
	const n, b = 4096, 64
	var fc frameCounter
	lb := plugintest.NewLoopback()
	a := connect(t, lb, fc.option()).(sdk.Adapter)

	var (
		mu       sync.Mutex
		received []sdk.AdapterMessage
		batches  int
		all      = make(chan struct{})
	)
	stop := subscribed(t, a, lb, func(batch []sdk.AdapterMessage) error {
		mu.Lock()
		defer mu.Unlock()
		batches++
		received = append(received, batch...)
		if len(received) == n {
			close(all)
		}
		return nil
	})
	sent := make([]sdk.AdapterMessage, n)
	for i := range sent {
		sent[i] = chatMessage(i)
	}
	sent[7].Except = []string{"sid-1"}
	sent[9].Attachments = [][]byte{{0xff, 0}, {}}
	sent[11].Volatile = true
	sent[13].Rooms = nil
	for i := 0; i < n; i += b {
		if err := a.Publish(ctxT(t), sent[i:i+b]); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatalf("received %d of %d messages", len(received), n)
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe after cancel: %v, want context.Canceled", err)
	}
	if err := a.(io.Closer).Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// An empty attachment comes back as nil inside the list; compare bytes.
	sent[9].Attachments[1] = nil
	received[9].Attachments[1] = nil
	if !reflect.DeepEqual(received, sent) {
		for i := range sent {
			if !reflect.DeepEqual(received[i], sent[i]) {
				t.Fatalf("message %d arrived as %+v, sent %+v", i, received[i], sent[i])
			}
		}
	}
	want := int64(n / b)
	if got := fc.get(&fc.recv, publishMethod); got != want {
		t.Errorf("Publish stream frames = %d, want %d (N/B)", got, want)
	}
	if got := fc.get(&fc.sent, subscribeMethod); got != want {
		t.Errorf("Subscribe stream frames = %d, want %d", got, want)
	}
	if batches != n/b || lb.Publishes() != uint64(n/b) {
		t.Errorf("deliver calls = %d, plugin Publish calls = %d, want %d", batches, lb.Publishes(), n/b)
	}
	if got := fc.get(&fc.streams, publishMethod); got != 1 {
		t.Errorf("Publish streams opened = %d, want 1", got)
	}
}

// TestAdapterPublishErrorReopens: a plugin that fails a batch ends the
// stream with its error; the host sees it on a later Publish, and the next
// Publish opens a new stream.
func TestAdapterPublishErrorReopens(t *testing.T) {
	var fc frameCounter
	var calls atomic.Int64
	f := &scriptedAdapter{fakeBase: fakeBase{kind: sdk.KindAdapter}}
	f.publish = func(_ context.Context, batch []sdk.AdapterMessage) error {
		if calls.Add(1) == 2 {
			return errors.New("redis: connection refused")
		}
		return nil
	}
	a := connect(t, f, fc.option()).(sdk.Adapter)
	batch := []sdk.AdapterMessage{chatMessage(1)}
	if err := a.Publish(ctxT(t), batch); err != nil {
		t.Fatal(err)
	}
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		err = a.Publish(ctxT(t), batch)
		time.Sleep(5 * time.Millisecond)
	}
	if err == nil || err.Error() != "adapter plugin: Publish: redis: connection refused" {
		t.Fatalf("Publish after the plugin failed: %v", err)
	}
	before := calls.Load()
	if err := a.Publish(ctxT(t), batch); err != nil {
		t.Fatalf("Publish on a new stream: %v", err)
	}
	if err := a.(io.Closer).Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if calls.Load() != before+1 {
		t.Errorf("plugin Publish calls %d -> %d, want one more", before, calls.Load())
	}
	if got := fc.get(&fc.streams, publishMethod); got != 2 {
		t.Errorf("Publish streams opened = %d, want 2", got)
	}
}

// TestAdapterPublishHonoursContext: when the plugin stops reading, flow
// control blocks Publish; the caller's context ends it, and the next
// Publish opens a new stream.
func TestAdapterPublishHonoursContext(t *testing.T) {
	release := make(chan struct{})
	var released atomic.Bool
	f := &scriptedAdapter{fakeBase: fakeBase{kind: sdk.KindAdapter}}
	f.publish = func(ctx context.Context, _ []sdk.AdapterMessage) error {
		if released.Load() {
			return nil
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
	a := connect(t, f).(sdk.Adapter)
	big := []sdk.AdapterMessage{{Namespace: "/", Data: bytes.Repeat([]byte("x"), 256<<10)}}
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err = a.Publish(ctx, big)
		cancel()
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish against a stalled plugin: %v, want context.DeadlineExceeded", err)
	}
	released.Store(true)
	close(release)
	if err := a.Publish(ctxT(t), big); err != nil {
		t.Fatalf("Publish after the stall: %v", err)
	}
	if err := a.Publish(ctxT(t), nil); err != nil {
		t.Fatalf("empty Publish: %v", err)
	}
}

func TestAdapterSubscribeEnds(t *testing.T) {
	f := &scriptedAdapter{fakeBase: fakeBase{kind: sdk.KindAdapter}}
	a := connect(t, f).(sdk.Adapter)
	one := []sdk.AdapterMessage{chatMessage(1)}

	f.subscribe = func(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error {
		if err := deliver(one); err != nil {
			return err
		}
		return errors.New("subscription lost: READONLY replica")
	}
	var got [][]sdk.AdapterMessage
	err := a.Subscribe(ctxT(t), func(b []sdk.AdapterMessage) error { got = append(got, b); return nil })
	if err == nil || err.Error() != "adapter plugin: Subscribe: subscription lost: READONLY replica" {
		t.Errorf("Subscribe = %v", err)
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], one) {
		t.Errorf("delivered %+v", got)
	}

	f.subscribe = func(context.Context, func([]sdk.AdapterMessage) error) error { return nil }
	if err := a.Subscribe(ctxT(t), func([]sdk.AdapterMessage) error { return nil }); err != nil {
		t.Errorf("plugin ended the stream cleanly, got %v", err)
	}

	f.subscribe = func(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error {
		for ctx.Err() == nil {
			if err := deliver(one); err != nil {
				return err
			}
			time.Sleep(time.Millisecond)
		}
		return ctx.Err()
	}
	stop := errors.New("host is full")
	if err := a.Subscribe(ctxT(t), func([]sdk.AdapterMessage) error { return stop }); err != stop {
		t.Errorf("deliver's error came back as %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.Subscribe(ctx, func([]sdk.AdapterMessage) error { return nil }); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Subscribe") {
		t.Errorf("Subscribe until deadline: %v", err)
	}
}
