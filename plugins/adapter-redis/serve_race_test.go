package main

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// A ServeRequests that ends while another starts on the same namespace
// must not leave the request channel unsubscribed (the ending one's
// UNSUBSCRIBE racing the starting one's SUBSCRIBE): the instance would no
// longer be counted nor get requests.
func TestServeRequestsHandover(t *testing.T) {
	r := testkit.StartRedis(t)
	raw := &plugin{}
	t.Cleanup(raw.close)
	if err := raw.Configure(context.Background(), sdk.Config(`{"url":"`+r.URL()+`"}`)); err != nil {
		t.Fatal(err)
	}
	m, err := raw.mode()
	if err != nil {
		t.Fatal(err)
	}
	c := m.(*classic)
	opts, _ := redis.ParseURL(r.URL())
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ch := c.requestChannel("/")
	numsub := func() int64 {
		n, err := rdb.PubSubNumSub(context.Background(), ch).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n[ch]
	}
	serveOn := func() (context.CancelFunc, chan struct{}) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = c.serveRequests(ctx, []string{"/"}, func(sdk.IncomingRequest) {}) }()
		return cancel, done
	}
	cancel, done := serveOn()
	waitNumSub(t, rdb, ch, 1)
	for i := range 40 {
		next, nextDone := serveOn()
		cancel()
		<-done
		cancel, done = next, nextDone
		// Let both SUBSCRIBE and UNSUBSCRIBE reach Redis.
		deadline := time.Now().Add(2 * time.Second)
		for numsub() != 1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		if n := numsub(); n != 1 {
			t.Fatalf("round %d: %s has %d subscribers, want 1 (the ServeRequests still running)", i, ch, n)
		}
	}
	cancel()
	<-done
	waitNumSub(t, rdb, ch, 0)
}
