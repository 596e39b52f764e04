package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// BenchmarkAdapterBoundary measures broadcasts through the in-process gRPC
// boundary and back: published in batches on the Publish stream, looped
// back by the plugin, received on the Subscribe stream. One op is one
// ~80-byte chat message; msgs/s counts messages received back.
func BenchmarkAdapterBoundary(b *testing.B) {
	if n := len(chatMessage(0).Data); n < 70 || n > 90 {
		b.Fatalf("chat payload is %d bytes, want about 80", n)
	}
	for _, size := range []int{1, 64, 512} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			lb := plugintest.NewLoopback()
			a := connect(b, lb).(sdk.Adapter)
			batch := make([]sdk.AdapterMessage, size)
			for i := range batch {
				batch[i] = chatMessage(i)
			}
			var received atomic.Int64
			target := int64(b.N)
			done := make(chan struct{})
			stop := subscribed(b, a, lb, func(got []sdk.AdapterMessage) error {
				if received.Add(int64(len(got))) >= target {
					select {
					case <-done:
					default:
						close(done)
					}
				}
				return nil
			})
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for sent := 0; sent < b.N; sent += size {
				if err := a.Publish(ctx, batch[:min(size, b.N-sent)]); err != nil {
					b.Fatal(err)
				}
			}
			<-done
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			_ = stop()
		})
	}
}

// BenchmarkAuthenticate measures one Authenticate round trip through the
// in-process boundary.
func BenchmarkAuthenticate(b *testing.B) {
	f := newFakeAuth()
	f.decision = &sdk.AuthDecision{Allow: true, UserID: "user-42", Rooms: []string{"user:42"}, Data: json.RawMessage(`{"role":"member"}`)}
	a := connect(b, f).(sdk.Authenticator)
	req := &sdk.AuthRequest{
		Namespace:  "/",
		Auth:       json.RawMessage(`{"token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl"}`),
		Headers:    map[string]string{"user-agent": "Mozilla/5.0", "origin": "https://chat.example"},
		Query:      map[string]string{"EIO": "4", "transport": "websocket"},
		RemoteAddr: "203.0.113.7:52114",
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
