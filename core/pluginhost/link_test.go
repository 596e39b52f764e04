package pluginhost_test

import (
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/sdk"
)

// collector records what a link's Receive callback gets from adapter-loop.
type collector struct {
	mu      sync.Mutex
	seen    map[int]int // message index → times received
	batches map[string]bool
	calls   int
}

func newCollector() *collector {
	return &collector{seen: map[int]int{}, batches: map[string]bool{}}
}

func (c *collector) deliver(batch []sdk.AdapterMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	for _, m := range batch {
		i, _ := strconv.Atoi(string(m.Data))
		c.seen[i]++
		for _, r := range m.Rooms {
			if strings.HasPrefix(r, "batch:") {
				c.batches[r] = true
			}
		}
	}
}

func (c *collector) count() (distinct, batches int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen), len(c.batches)
}

func (c *collector) check(t *testing.T, from, to int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := from; i < to; i++ {
		if c.seen[i] != 1 {
			t.Fatalf("message %d received %d times", i, c.seen[i])
		}
	}
}

func msg(i int) sdk.AdapterMessage {
	return sdk.AdapterMessage{Namespace: "/", Rooms: []string{"r"}, Data: []byte(strconv.Itoa(i))}
}

func TestClusterLinkBatches10k(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAdapter, Name: "loop"})
	link := p.ClusterLink(pluginhost.LinkOptions{})
	defer link.Close()
	c := newCollector()
	link.Receive(c.deliver)

	const n = 10000
	start := time.Now()
	for i := range n {
		if !link.Send(msg(i)) {
			t.Fatalf("Send %d refused", i)
		}
	}
	sendTook := time.Since(start)
	eventually(t, 10*time.Second, "10k messages back", func() bool { d, _ := c.count(); return d == n })
	took := time.Since(start)
	c.check(t, 0, n)
	_, batches := c.count()
	st := settledStats(link, n)
	t.Logf("10000 messages: %d Publish batches (plugin side), send loop %s, round trip %s, stats %+v",
		batches, sendTook.Round(time.Microsecond), took.Round(time.Millisecond), st)
	if batches >= n/10 {
		t.Fatalf("%d batches for %d messages", batches, n)
	}
	if st.Sent != n || st.Batches != uint64(batches) || st.Dropped != 0 || st.Received != n || st.Queued != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

// settledStats returns the link's stats once sent messages are counted as
// sent and none as queued, or after 2 s. The link counts a batch when its
// Publish call returns, which can be after the loop plugin handed the
// batch back to the collector.
func settledStats(link *pluginhost.Link, sent uint64) pluginhost.LinkStats {
	st := link.Stats()
	for deadline := time.Now().Add(2 * time.Second); (st.Sent != sent || st.Queued != 0) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		st = link.Stats()
	}
	return st
}

func TestClusterLinkQueuesWhileDown(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAdapter, Name: "loop"})
	link := p.ClusterLink(pluginhost.LinkOptions{})
	defer link.Close()
	c := newCollector()
	link.Receive(c.deliver)

	for i := range 100 {
		link.Send(msg(i))
	}
	eventually(t, 5*time.Second, "first 100", func() bool { d, _ := c.count(); return d == 100 })

	syscall.Kill(p.State().PID, syscall.SIGKILL)
	killed := time.Now()
	eventually(t, 2*time.Second, "plugin down", func() bool { return !p.State().Up })
	for i := 100; i < 600; i++ {
		if !link.Send(msg(i)) {
			t.Fatalf("Send %d refused while down", i)
		}
	}
	if q := link.Stats().Queued; q == 0 {
		t.Fatal("nothing queued while down")
	}
	eventually(t, 5*time.Second, "queued messages delivered after restart", func() bool { d, _ := c.count(); return d == 600 })
	t.Logf("500 messages queued while down delivered %s after kill -9", time.Since(killed).Round(time.Millisecond))
	c.check(t, 0, 600)
	st := settledStats(link, 600)
	if st.Dropped != 0 || st.Sent != 600 || st.Queued != 0 {
		t.Fatalf("Stats = %+v", st)
	}
	if st := p.State(); st.Restarts != 1 {
		t.Fatalf("State = %+v", st)
	}
	// The re-opened stream keeps working.
	link.Send(msg(600))
	eventually(t, 2*time.Second, "message after restart", func() bool { d, _ := c.count(); return d == 601 })
}

func TestClusterLinkOverflowDropsAndCounts(t *testing.T) {
	// A slow restart: the sends below all happen while the plugin is down.
	h, _ := newHost(t, pluginhost.Options{BackoffMin: 500 * time.Millisecond})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAdapter, Name: "loop"})
	const queue = 100
	link := p.ClusterLink(pluginhost.LinkOptions{Queue: queue, MaxBatch: 10})
	defer link.Close()
	c := newCollector()
	link.Receive(c.deliver)

	syscall.Kill(p.State().PID, syscall.SIGKILL)
	eventually(t, 2*time.Second, "plugin down", func() bool { return !p.State().Up })
	accepted := 0
	start := time.Now()
	for i := range 300 {
		if link.Send(msg(i)) {
			accepted++
		}
		if q := link.Stats().Queued; q > queue+1 {
			t.Fatalf("Queued = %d > %d", q, queue)
		}
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("Send blocked: 300 sends took %s", took)
	}
	if p.State().Up {
		t.Fatal("plugin came back during the sends; the test needs a slower restart")
	}
	st := link.Stats()
	t.Logf("accepted %d of 300 with Queue=%d while down; stats %+v", accepted, queue, st)
	if accepted < queue-1 || accepted > queue+1 || st.Dropped != uint64(300-accepted) {
		t.Fatalf("accepted %d, Stats %+v", accepted, st)
	}
	eventually(t, 5*time.Second, "accepted messages delivered", func() bool { d, _ := c.count(); return d == accepted })
	c.check(t, 0, accepted)
	if st := link.Stats(); st.Dropped != uint64(300-accepted) || st.Sent != uint64(accepted) {
		t.Fatalf("Stats = %+v", st)
	}
}

// Batches also stop at MaxBatchBytes.
func TestClusterLinkMaxBatchBytes(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAdapter, Name: "loop"})
	link := p.ClusterLink(pluginhost.LinkOptions{MaxBatchBytes: 1000, Linger: 20 * time.Millisecond})
	defer link.Close()
	var mu sync.Mutex
	perBatch := map[string]int{}
	got := 0
	link.Receive(func(b []sdk.AdapterMessage) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range b {
			got++
			for _, r := range m.Rooms {
				if strings.HasPrefix(r, "batch:") {
					perBatch[r]++
				}
			}
		}
	})
	for i := range 30 {
		m := msg(i)
		m.Attachments = [][]byte{make([]byte, 300)}
		link.Send(m)
	}
	eventually(t, 5*time.Second, "30 messages", func() bool { mu.Lock(); defer mu.Unlock(); return got == 30 })
	mu.Lock()
	defer mu.Unlock()
	for tag, n := range perBatch {
		if n > 3 {
			t.Fatalf("%s carried %d messages of ~330 bytes with MaxBatchBytes 1000", tag, n)
		}
	}
	if len(perBatch) < 10 {
		t.Fatalf("%d batches for 30 messages", len(perBatch))
	}
}

// Close publishes what is queued.
func TestClusterLinkCloseFlushes(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAdapter, Name: "loop"})
	link := p.ClusterLink(pluginhost.LinkOptions{Linger: 500 * time.Millisecond})
	for i := range 50 {
		link.Send(msg(i))
	}
	start := time.Now()
	link.Close()
	if took := time.Since(start); took > 400*time.Millisecond {
		t.Fatalf("Close took %s", took)
	}
	if st := link.Stats(); st.Sent != 50 || st.Dropped != 0 {
		t.Fatalf("Stats = %+v", st)
	}
	if link.Send(msg(50)) {
		t.Fatal("Send after Close accepted")
	}
	link.Close()
}

// After a quiet spell a message is published at once, not after the
// linger; a burst that follows is still batched.
func TestClusterLinkQuietMessageSkipsTheLinger(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAdapter, Name: "loop"})
	link := p.ClusterLink(pluginhost.LinkOptions{Linger: 2 * time.Second})
	defer link.Close()
	c := newCollector()
	link.Receive(c.deliver)

	start := time.Now()
	link.Send(msg(0))
	eventually(t, 5*time.Second, "the lone message back", func() bool { d, _ := c.count(); return d == 1 })
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a lone message took %s with a 2s linger", took)
	}
	for i := 1; i <= 100; i++ {
		link.Send(msg(i))
	}
	eventually(t, 10*time.Second, "the burst back", func() bool { d, _ := c.count(); return d == 101 })
	if _, batches := c.count(); batches > 4 {
		t.Fatalf("101 messages in %d batches", batches)
	}
}
