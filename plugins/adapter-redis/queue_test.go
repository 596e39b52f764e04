package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// gate is a TCP forwarder to Redis that a test opens and closes: the
// plugin behind it loses Redis (connections cut, new ones refused) while
// the others keep theirs.
type gate struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	open  bool
	conns map[net.Conn]struct{}
}

func newGate(t *testing.T, target string) *gate {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{l: l, target: target, open: true, conns: map[net.Conn]struct{}{}}
	go g.accept()
	t.Cleanup(func() { l.Close(); g.set(false) })
	return g
}

func (g *gate) URL() string { return "redis://" + g.l.Addr().String() }

func (g *gate) set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = open
	if !open {
		for c := range g.conns {
			c.Close()
		}
		clear(g.conns)
	}
}

func (g *gate) accept() {
	for {
		c, err := g.l.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		open := g.open
		g.mu.Unlock()
		if !open {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", g.target)
		if err != nil {
			c.Close()
			continue
		}
		g.mu.Lock()
		g.conns[c], g.conns[up] = struct{}{}, struct{}{}
		g.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
	}
}

// numbers returns how many times each n of ["ev", n] was delivered.
func (c *collector) numbers(ev string) map[int]int {
	out := map[int]int{}
	for _, m := range c.event(ev) {
		var arr []json.RawMessage
		var n int
		if json.Unmarshal(m.Data, &arr) == nil && len(arr) == 2 && json.Unmarshal(arr[1], &n) == nil {
			out[n]++
		}
	}
	return out
}

func numbered(ev string, from, n int) []sdk.AdapterMessage {
	batch := make([]sdk.AdapterMessage, n)
	for i := range batch {
		batch[i] = sdk.AdapterMessage{Namespace: "/", Data: []byte(fmt.Sprintf(`[%q,%d]`, ev, from+i))}
	}
	return batch
}

// metric reads one counter or gauge from a Status (labels as "k=v").
func metric(t *testing.T, st sdk.StatusReporter, name string, labels ...string) float64 {
	t.Helper()
	s, err := st.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	match := func(ls []sdk.MetricLabel) bool {
		if len(ls) != len(labels) {
			return false
		}
		for i, l := range ls {
			if l.Name+"="+l.Value != labels[i] {
				return false
			}
		}
		return true
	}
	for _, m := range append(s.Metrics.Counters, s.Metrics.Gauges...) {
		if m.Name == name && match(m.Labels) {
			return m.Value
		}
	}
	for _, h := range s.Metrics.Histograms {
		if h.Name == name && match(h.Labels) {
			return float64(h.Count)
		}
	}
	return -1
}

func degraded(t *testing.T, st sdk.StatusReporter) string {
	t.Helper()
	s, err := st.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Degraded
}

// Redis stops for 3 s under a steady publish load: Publish never fails,
// both sides report themselves degraded, and once Redis is back every
// message published meanwhile reaches the other instance. The receiver
// comes back late (it reaches Redis through a gate held closed 1.5 s more):
// the queue holds its backlog until the receiver has subscribed again
// (PUBSUB NUMPAT back to what it was), or Redis pub/sub would drop it.
func TestPublishWhileRedisStopped(t *testing.T) {
	r := testkit.StartRedis(t)
	g := newGate(t, r.Addr())
	a := newRequestInstance(t, fmt.Sprintf(`{"url":%q,"key":"test"}`, r.URL()))
	b := newRequestInstance(t, fmt.Sprintf(`{"url":%q,"key":"test"}`, g.URL()))
	cb := subscribe(t, b.a)
	await(t, a.a, cb, "ready")
	time.Sleep(subscribersEvery) // a has sampled NUMPAT (b's pattern) by now

	var sent atomic.Int64
	var pubErr atomic.Value
	var paused atomic.Bool
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() { // 10 messages every 10 ms: the queue (10000) never fills
		defer close(loadDone)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if paused.Load() {
				continue
			}
			n := int(sent.Load())
			if err := a.a.Publish(context.Background(), numbered("load", n, 10)); err != nil {
				pubErr.Store(err)
			}
			sent.Add(10)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	// Redis pub/sub is at most once: a message Redis took in the instant
	// it is killed may never reach b, and nobody can know. So the load
	// pauses while Redis dies (until b has everything sent so far); it
	// resumes while Redis is down, and what it sends then must all arrive.
	paused.Store(true)
	time.Sleep(20 * time.Millisecond) // a Publish in progress completes
	eventually(t, "b has every message sent before the outage", func() bool {
		return len(cb.numbers("load")) == int(sent.Load())
	})
	r.Kill()
	g.set(false) // after: what Redis took before it died went to b
	paused.Store(false)
	stoppedAt := time.Now()
	eventually(t, "a reports publishing failing", func() bool { return strings.Contains(degraded(t, a.st), "redis: publish: ") })
	eventually(t, "b reports its subscription down", func() bool { return strings.Contains(degraded(t, b.st), "redis: subscription: ") })
	t.Logf("degraded while stopped: a %q; b %q", degraded(t, a.st), degraded(t, b.st))
	time.Sleep(3*time.Second - time.Since(stoppedAt))
	queued := metric(t, a.st, "redis_publish_queue_messages")
	r.Start()
	time.Sleep(1500 * time.Millisecond)
	g.set(true)
	time.Sleep(time.Second)
	close(stop)
	<-loadDone
	total := int(sent.Load())
	if err := pubErr.Load(); err != nil {
		t.Fatalf("Publish failed while Redis was down: %v", err)
	}
	if queued < 500 {
		t.Fatalf("only %v messages queued during a 3 s outage", queued)
	}

	deadline := time.Now().Add(20 * time.Second)
	var got map[int]int
	for {
		got = cb.numbers("load")
		if len(got) == total || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	dups := 0
	for i := 0; i < total; i++ {
		if got[i] == 0 {
			t.Fatalf("message %d of %d never arrived (%d arrived)", i, total, len(got))
		}
		dups += got[i] - 1
	}
	t.Logf("%d messages sent, %v were queued when Redis came back, all arrived (%d twice: a pipeline cut by the kill is sent again)", total, queued, dups)
	eventually(t, "a's queue empties and its status clears", func() bool {
		return metric(t, a.st, "redis_publish_queue_messages") == 0 && degraded(t, a.st) == ""
	})
	if d := metric(t, a.st, "redis_publish_dropped_total", "reason=queue_full"); d != 0 {
		t.Fatalf("dropped %v", d)
	}
	if p := metric(t, a.st, "redis_published_messages_total"); p < float64(total) {
		t.Fatalf("published_total %v < %d sent", p, total)
	}
	if e := metric(t, a.st, "redis_errors_total", "command=pipeline") + metric(t, a.st, "redis_errors_total", "command=dial"); e <= 0 {
		t.Fatalf("no Redis errors counted: %v", e)
	}
}

// With a tiny queue and Redis unreachable, what does not fit is dropped,
// counted exactly, and the rest is delivered once Redis is back: the
// oldest messages, each once.
func TestPublishQueueOverflow(t *testing.T) {
	r := testkit.StartRedis(t)
	g := newGate(t, r.Addr())
	a := newRequestInstance(t, fmt.Sprintf(`{"url":%q,"key":"test","queue":50}`, g.URL()))
	b := newRequestInstance(t, fmt.Sprintf(`{"url":%q,"key":"test"}`, r.URL()))
	cb := subscribe(t, b.a)
	await(t, a.a, cb, "ready")
	eventually(t, "ready pings sent", func() bool { return metric(t, a.st, "redis_publish_queue_messages") == 0 })

	g.set(false)
	for i := 0; i < 4; i++ {
		if err := a.a.Publish(context.Background(), numbered("ovf", 50*i, 50)); err != nil {
			t.Fatal(err)
		}
	}
	// One frame crosses the boundary at a time; the last may still be in
	// the pipe.
	eventually(t, "150 dropped", func() bool { return metric(t, a.st, "redis_publish_dropped_total", "reason=queue_full") == 150 })
	if q := metric(t, a.st, "redis_publish_queue_messages"); q != 50 {
		t.Fatalf("queue gauge %v, want 50", q)
	}
	published := metric(t, a.st, "redis_published_messages_total")
	g.set(true)
	eventually(t, "50 delivered", func() bool { return len(cb.numbers("ovf")) == 50 })
	time.Sleep(200 * time.Millisecond)
	got := cb.numbers("ovf")
	for i := 0; i < 50; i++ {
		if got[i] != 1 {
			t.Fatalf("message %d delivered %d times; got %v", i, got[i], got)
		}
	}
	if len(got) != 50 {
		t.Fatalf("delivered %d distinct messages, want the first 50", len(got))
	}
	if d := metric(t, a.st, "redis_publish_dropped_total", "reason=queue_full"); d != 150 {
		t.Fatalf("dropped %v, want 150", d)
	}
	if p := metric(t, a.st, "redis_published_messages_total"); p != published+50 {
		t.Fatalf("published_total %v, want %v", p, published+50)
	}
}

// Publish refuses a message that cannot be encoded at once, and queues
// the rest of its batch.
func TestPublishInvalid(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newRequestInstance(t, fmt.Sprintf(`{"url":%q,"key":"test"}`, r.URL()))
	b := newRequestInstance(t, fmt.Sprintf(`{"url":%q,"key":"test"}`, r.URL()))
	cb := subscribe(t, b.a)
	await(t, a.a, cb, "ready")
	err := a.raw.Publish(context.Background(), []sdk.AdapterMessage{
		{Namespace: "/", Data: []byte(`["good",1]`)},
		{Namespace: "/", Data: []byte(`{"not":"an array"}`)},
		{Namespace: "/", Data: []byte(`["bin",{"_placeholder":true,"num":3}]`)},
		{Namespace: "/", Data: []byte(`["good",2]`)},
	})
	if err == nil || !strings.Contains(err.Error(), "message 1: message data is not a JSON array") ||
		!strings.Contains(err.Error(), "message 2: placeholder 3 but 0 attachments") {
		t.Fatalf("Publish: %v", err)
	}
	eventually(t, "the good ones arrive", func() bool { return len(cb.numbers("good")) == 2 })
	if n := metric(t, a.st, "redis_publish_invalid_total"); n != 2 {
		t.Fatalf("invalid %v", n)
	}
}

// Closing the plugin publishes what is queued; when Redis is unreachable
// it gives up after the bound and counts what it dropped.
func TestCloseFlushesQueue(t *testing.T) {
	r := testkit.StartRedis(t)
	g := newGate(t, r.Addr())
	a := newRequestInstance(t, fmt.Sprintf(`{"url":%q,"key":"test"}`, g.URL()))
	b := newRequestInstance(t, fmt.Sprintf(`{"url":%q,"key":"test"}`, r.URL()))
	cb := subscribe(t, b.a)
	await(t, a.a, cb, "ready")
	for i := 0; i < 20; i++ {
		_ = a.raw.Publish(context.Background(), numbered("bye", 100*i, 100))
	}
	a.raw.close()
	eventually(t, "all 2000 delivered", func() bool { return len(cb.numbers("bye")) == 2000 })

	c := newRequestInstance(t, fmt.Sprintf(`{"url":%q,"key":"test"}`, g.URL()))
	g.set(false)
	_ = c.raw.Publish(context.Background(), numbered("lost", 0, 30))
	start := time.Now()
	c.raw.close()
	if took := time.Since(start); took < closeFlushBound || took > closeFlushBound+3*time.Second {
		t.Fatalf("close took %v, want about %v", took, closeFlushBound)
	}
	if d := c.raw.metrics().droppedClose.Load(); d != 30 {
		t.Fatalf("dropped on close %d, want 30", d)
	}
}

// The metrics are well formed: the command histogram's buckets go from
// 100 µs to 1 s and are cumulative, errors are counted by command, and no
// instance label is added (the core adds its own).
func TestStatusMetrics(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newRequestInstance(t, fmt.Sprintf(`{"url":%q,"key":"test"}`, r.URL()))
	b := newRequestInstance(t, fmt.Sprintf(`{"url":%q,"key":"test"}`, r.URL()))
	cb := subscribe(t, b.a)
	await(t, a.a, cb, "ready")
	serve(t, b, newTestCore("b", nil), "/")
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	waitNumSub(t, rdb, "test-request#/#", 1)
	if got := ask(a, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/"}); got.res.Answered != 1 {
		t.Fatalf("%+v %v", got.res, got.err)
	}
	s, err := a.st.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Degraded != "" {
		t.Fatalf("degraded %q with Redis up", s.Degraded)
	}
	hist := map[string]sdk.MetricHistogram{}
	for _, h := range s.Metrics.Histograms {
		if h.Name != "redis_command_duration_seconds" || len(h.Labels) != 1 || h.Labels[0].Name != "command" {
			t.Fatalf("histogram %+v", h)
		}
		hist[h.Labels[0].Value] = h
		if len(h.Bounds) != len(h.Counts) || h.Bounds[0] != 0.0001 || h.Bounds[len(h.Bounds)-1] != 1 {
			t.Fatalf("bounds %v", h.Bounds)
		}
		for i := 1; i < len(h.Counts); i++ {
			if h.Counts[i] < h.Counts[i-1] || h.Bounds[i] <= h.Bounds[i-1] {
				t.Fatalf("not cumulative/ascending: %v %v", h.Bounds, h.Counts)
			}
		}
		if h.Count < h.Counts[len(h.Counts)-1] || h.Count == 0 || h.Sum <= 0 {
			t.Fatalf("%+v", h)
		}
	}
	for _, cmd := range []string{"pipeline", "publish", "pubsub", "dial"} {
		if _, ok := hist[cmd]; !ok {
			t.Errorf("no histogram for command %q (have %v)", cmd, hist)
		}
	}
	for _, m := range append(s.Metrics.Counters, s.Metrics.Gauges...) {
		if !strings.HasPrefix(m.Name, "redis_") || m.Help == "" {
			t.Errorf("metric %+v", m)
		}
		for _, l := range m.Labels {
			if l.Name == "instance" {
				t.Errorf("instance label on %s", m.Name)
			}
		}
	}
	if e := metric(t, a.st, "redis_errors_total", "command=pipeline"); e != 0 {
		t.Fatalf("pipeline errors %v with Redis up", e)
	}
}

// BenchmarkPublishQueue measures what one instance publishes through the
// queue: b.N messages in batches of 256, until Redis has taken them all.
func BenchmarkPublishQueue(b *testing.B) {
	r := testkit.StartRedis(b)
	raw := &plugin{}
	defer raw.close()
	if err := raw.Configure(context.Background(), sdk.Config(fmt.Sprintf(`{"url":%q,"key":"bench"}`, r.URL()))); err != nil {
		b.Fatal(err)
	}
	batch := numbered("bench", 0, 256)
	for i := range batch {
		batch[i].Data = []byte(`["bench",{"text":"hello, room","n":12345,"ok":true}]`)
	}
	met := raw.metrics()
	base := met.published.Load()
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; sent += len(batch) {
		n := min(len(batch), b.N-sent)
		for raw.Publish(context.Background(), batch[:n]) != nil || met.droppedFull.Load() > 0 {
			b.Fatal("dropped: the benchmark outran the queue")
		}
		for met.queued.Load() > defaultQueue/2 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	for met.published.Load()-base < uint64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkRequestRoundTrip measures a fetch-sockets request answered by
// one other instance (plugins called directly: Redis and the plugin only).
func BenchmarkRequestRoundTrip(b *testing.B) {
	r := testkit.StartRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	cfg := sdk.Config(fmt.Sprintf(`{"url":%q,"key":"bench"}`, r.URL()))
	var ins []*plugin
	for range 2 {
		p := &plugin{}
		defer p.close()
		if err := p.Configure(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
		ins = append(ins, p)
	}
	core := newTestCore("b", []string{"room1"}, []string{"room1"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = ins[1].ServeRequests(ctx, []string{"/"}, core.handle) }()
	for {
		n, _ := rdb.PubSubNumSub(ctx, "bench-request#/#").Result()
		if n["bench-request#/#"] == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := ins[0].Request(ctx, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/"}, func(sdk.ClusterResponse) {})
		if err != nil || res.Answered != 1 {
			b.Fatalf("%+v %v", res, err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// The hook costs no allocation per command or pipeline.
func TestHookAllocations(t *testing.T) {
	m := newMetrics()
	cmd := redis.NewIntCmd(context.Background(), "publish", "ch", "x")
	process := m.ProcessHook(func(context.Context, redis.Cmder) error { return nil })
	pipeline := m.ProcessPipelineHook(func(context.Context, []redis.Cmder) error { return nil })
	cmds := []redis.Cmder{cmd, cmd}
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		_ = process(ctx, cmd)
		_ = pipeline(ctx, cmds)
	}); n != 0 {
		t.Fatalf("%v allocations per command", n)
	}
	if c := &m.cmds[commandIndex("publish")].buckets; c[0].Load()+c[1].Load()+c[2].Load() == 0 {
		t.Fatal("nothing observed")
	}
}

// go-redis's log lines pass at most once per interval, with a count of
// those held back.
func TestQuietLogger(t *testing.T) {
	var sb strings.Builder
	l := &quietLogger{out: &sb, every: time.Hour}
	for i := range 5 {
		l.Printf(context.Background(), "dial failed %d", i)
	}
	l.last = time.Now().Add(-2 * time.Hour)
	l.Printf(context.Background(), "dial failed %d", 5)
	want := "redis: dial failed 0\nredis: dial failed 5 (and 4 more go-redis messages in the last 2h0m0s)\n"
	if sb.String() != want {
		t.Fatalf("got %q, want %q", sb.String(), want)
	}
}

// Two servers on the same pattern are two subscribers (PUBSUB NUMPAT would
// say one), so the post-outage wait holds until both are back.
func TestSubscribersCountsEveryPatternClient(t *testing.T) {
	r := testkit.StartRedis(t)
	opts, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	c := &classic{rdb: rdb}
	ctx := context.Background()
	count := func() int64 {
		n, err := c.subscribers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("no subscribers yet: %d", n)
	}
	var subs []*redis.PubSub
	for i := range 2 {
		ps := rdb.PSubscribe(ctx, "socket.io#*")
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil { // the confirmation
			t.Fatal(err)
		}
		subs = append(subs, ps)
		if n := count(); n != int64(i+1) {
			t.Fatalf("%d clients on one pattern: subscribers = %d", i+1, n)
		}
	}
	if numpat, _ := rdb.PubSubNumPat(ctx).Result(); numpat != 1 {
		t.Logf("NUMPAT = %d (distinct patterns)", numpat)
	}
	subs[0].Close()
	testkit.WaitForState(t, 5*time.Second, "one subscriber left", func() (bool, string) { n := count(); return n == 1, fmt.Sprint(n) })
}

// CLIENT LIST TYPE pubsub counts RESP2 and RESP3 pattern subscribers alike,
// and gives the same count as the whole list (the fallback).
func TestSubscribersPubSubTypeMatchesWholeList(t *testing.T) {
	r := testkit.StartRedis(t)
	ctx := context.Background()
	var clients []*redis.Client
	for _, proto := range []int{2, 3} {
		opts, err := redis.ParseURL(r.URL())
		if err != nil {
			t.Fatal(err)
		}
		opts.Protocol = proto
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		clients = append(clients, rdb)
		ps := rdb.PSubscribe(ctx, "socket.io#*")
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Ping(ctx).Err(); err != nil { // a normal client besides
			t.Fatal(err)
		}
	}
	c := &classic{rdb: clients[0]}
	n, err := c.subscribers(ctx)
	if err != nil || n != 2 || c.noClientType.Load() {
		t.Fatalf("CLIENT LIST TYPE pubsub: %d, %v (refused: %v), want 2", n, err, c.noClientType.Load())
	}
	c.noClientType.Store(true)
	if n, err := c.subscribers(ctx); err != nil || n != 2 {
		t.Fatalf("CLIENT LIST: %d, %v, want 2", n, err)
	}
}
