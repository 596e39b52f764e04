package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The fanout and cluster scenarios. Publishers emit
//
//	publish {"room":R,"pub":P,"seq":S,"ts":T,"pad":"xx..."}
//
// where T is the generator's monotonic clock in ns when sent, and every
// subscriber (all in room R) checks off (P, S) in a bitset: a second arrival
// is a duplicate, a hole after the drain a loss. The receive path scans the
// packet for the three numbers instead of decoding JSON, and allocates
// nothing of its own.

// epoch is the zero of the monotonic timestamps carried in messages.
var epoch = time.Now()

func mono() int64 { return int64(time.Since(epoch)) }

var (
	keyPub = []byte(`"pub":`)
	keySeq = []byte(`"seq":`)
	keyTs  = []byte(`"ts":`)
)

// scanMessage finds pub, seq and ts in a received Socket.IO EVENT packet
// (`2["publish",{...}]`).
func scanMessage(p []byte) (pub, seq int, ts int64, ok bool) {
	if len(p) < 2 || p[0] != '2' {
		return 0, 0, 0, false
	}
	v, p, ok := scanInt(p, keyPub)
	if !ok {
		return 0, 0, 0, false
	}
	pub = int(v)
	if v, p, ok = scanInt(p, keySeq); !ok {
		return 0, 0, 0, false
	}
	seq = int(v)
	if ts, _, ok = scanInt(p, keyTs); !ok {
		return 0, 0, 0, false
	}
	return pub, seq, ts, true
}

// scanInt finds key in p and parses the non-negative integer after it; it
// returns the rest of p after the number.
func scanInt(p, key []byte) (int64, []byte, bool) {
	i := bytes.Index(p, key)
	if i < 0 {
		return 0, p, false
	}
	p = p[i+len(key):]
	var v int64
	n := 0
	for n < len(p) && p[n] >= '0' && p[n] <= '9' {
		v = v*10 + int64(p[n]-'0')
		n++
	}
	if n == 0 {
		return 0, p, false
	}
	return v, p[n:], true
}

// appendMessage appends the Engine.IO packet of one published message,
// padded to size bytes when it is shorter.
func appendMessage(b []byte, roomJSON string, pub, seq int, ts int64, size int) []byte {
	b = append(b, `42["publish",{"room":`...)
	b = append(b, roomJSON...)
	b = append(b, `,"pub":`...)
	b = strconv.AppendInt(b, int64(pub), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"pad":"`...)
	for n := size - len(b) - 3; n > 0; n-- {
		b = append(b, 'x')
	}
	return append(b, `"}]`...)
}

// subscriber is one receiving client; its fields are written by its reader
// goroutine only, and read once that goroutine has ended.
type subscriber struct {
	cl           *client
	remote       bool       // cluster: connected elsewhere than the publishers
	seen         [][]uint64 // per publisher: bit seq set when received
	got, dup     uint64
	disconnected bool
}

// fanoutRun is the state shared by publishers and subscribers.
type fanoutRun struct {
	c          *config
	nsubs      int
	received   atomic.Uint64 // unique deliveries, all subscribers
	duplicated atomic.Uint64
	measureTs  atomic.Int64 // messages sent at or after this (mono ns) are timed
	local      hist
	remote     hist
	// Flow control at --rate 0: per publisher, deliveries per in-flight
	// message (ring of --window slots) and the credits of free slots.
	ring    [][]atomic.Int32
	credits []chan struct{}
	sent    []atomic.Uint64
	stalls  atomic.Uint64
}

func (f *fanoutRun) read(s *subscriber) {
	for {
		p, err := s.cl.next()
		if err != nil {
			select {
			case <-s.cl.closed:
			default:
				s.disconnected = true
			}
			return
		}
		pub, seq, ts, ok := scanMessage(p)
		if !ok || pub >= len(s.seen) {
			continue
		}
		now := mono()
		w, bit := seq>>6, uint64(1)<<(seq&63)
		bs := s.seen[pub]
		if w >= len(bs) {
			bs = append(bs, make([]uint64, w+1-len(bs)+len(bs))...)
			s.seen[pub] = bs
		}
		if bs[w]&bit != 0 {
			s.dup++
			f.duplicated.Add(1)
			continue
		}
		bs[w] |= bit
		s.got++
		f.received.Add(1)
		if mt := f.measureTs.Load(); mt > 0 && ts >= mt {
			if s.remote {
				f.remote.record(time.Duration(now - ts))
			} else {
				f.local.record(time.Duration(now - ts))
			}
		}
		if f.ring != nil {
			if f.ring[pub][seq%len(f.ring[pub])].Add(1) == int32(f.nsubs) {
				select { // never blocks: after a stall there may be a spare credit
				case f.credits[pub] <- struct{}{}:
				default:
				}
			}
		}
	}
}

// publish sends from publisher pub until end: every interval, or at
// interval 0 whenever a --window slot is free.
func (f *fanoutRun) publish(ctx context.Context, cl *client, pub int, start, end time.Time, interval time.Duration) error {
	roomJSON := quote(f.c.room)
	buf := make([]byte, 0, f.c.size+128)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	wait := func(d time.Duration) bool {
		if d <= 0 {
			return ctx.Err() == nil
		}
		timer.Reset(d)
		select {
		case <-timer.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for seq := 0; ; seq++ {
		if interval > 0 {
			at := start.Add(time.Duration(seq) * interval)
			if !at.Before(end) || !wait(time.Until(at)) {
				return nil
			}
		} else {
			if !time.Now().Before(end) {
				return nil
			}
			timer.Reset(time.Second)
			select {
			case <-f.credits[pub]:
				timer.Stop()
			case <-timer.C: // a slot never completed (a subscriber gone?)
				f.stalls.Add(1)
			case <-ctx.Done():
				return nil
			}
			f.ring[pub][seq%len(f.ring[pub])].Store(0)
		}
		buf = appendMessage(buf[:0], roomJSON, pub, seq, mono(), f.c.size)
		if err := cl.send(buf); err != nil {
			return fmt.Errorf("publisher %d: %w", pub, err)
		}
		f.sent[pub].Store(uint64(seq + 1))
	}
}

type fanoutResult struct {
	common
	Subscribers   int     `json:"subscribers"`
	Publishers    int     `json:"publishers"`
	Rate          float64 `json:"rate"` // offered msg/s, all publishers; 0 = as fast as delivered
	Size          int     `json:"size"`
	ConnectFailed int     `json:"connect_failed"`
	// Whole run (warm-up, window, drain).
	Sent         uint64 `json:"sent"`
	Expected     uint64 `json:"expected"` // sent × subscribers
	Received     uint64 `json:"received"` // unique deliveries
	Lost         uint64 `json:"lost"`
	Duplicated   uint64 `json:"duplicated"`
	LosingSubs   int    `json:"subscribers_losing"`
	Disconnected int    `json:"disconnected"`
	Stalls       uint64 `json:"window_stalls"`
	// Measured window.
	PublishedPerS float64 `json:"published_per_s"`
	DeliveredPerS float64 `json:"delivered_per_s"`
	LatP50Ms      float64 `json:"lat_p50_ms"`
	LatP90Ms      float64 `json:"lat_p90_ms"`
	LatP99Ms      float64 `json:"lat_p99_ms"`
	LatMaxMs      float64 `json:"lat_max_ms"`
	// CPU per delivered message in the window.
	ServerCPUUsPerMsg float64 `json:"server_cpu_us_per_msg"`
	GenCPUUsPerMsg    float64 `json:"gen_cpu_us_per_msg"`
}

type clusterResult struct {
	fanoutResult
	SubscribersPerURL     []int   `json:"subscribers_per_url"`
	LocalP50Ms            float64 `json:"local_p50_ms"`
	LocalP99Ms            float64 `json:"local_p99_ms"`
	RemoteP50Ms           float64 `json:"remote_p50_ms"`
	RemoteP99Ms           float64 `json:"remote_p99_ms"`
	RemoteMinusLocalP50Ms float64 `json:"remote_minus_local_p50_ms"`
}

func runFanout(ctx context.Context, c *config, cluster bool) (any, string, error) {
	scenario := "fanout"
	if cluster {
		scenario = "cluster"
	}
	if c.publishers < 1 || c.n < 1 {
		return nil, "", errors.New("need -n >= 1 and --publishers >= 1")
	}
	if c.rate < 0 {
		return nil, "", errors.New("--rate must be >= 0")
	}
	r := fanoutResult{common: newCommon(scenario, c), Subscribers: c.n, Publishers: c.publishers, Rate: c.rate, Size: c.size}
	auth, err := newTokenPool(c.jwtSecret, c.jwtAud)
	if err != nil {
		return nil, "", err
	}
	f := &fanoutRun{c: c, sent: make([]atomic.Uint64, c.publishers)}

	// Bitsets sized for the messages expected, so that they rarely grow.
	perPub := 1024
	if c.rate > 0 {
		perPub = int(c.rate/float64(c.publishers)*(c.warmup+c.duration).Seconds()*1.1) + 64
	}
	subs := make([]*subscriber, c.n)
	var readers sync.WaitGroup
	urlOf := func(i int) string { return c.urls[i%len(c.urls)] }
	clients, failed, firstErr := connectAll(ctx, c, c.n, urlOf, auth, func(i int, cl *client) error {
		jctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		if err := cl.joinRoom(jctx, c.room); err != nil {
			return err
		}
		s := &subscriber{cl: cl, remote: i%len(c.urls) != 0, seen: make([][]uint64, c.publishers)}
		for p := range s.seen {
			s.seen[p] = make([]uint64, perPub/64+1)
		}
		subs[i] = s
		readers.Add(1)
		go func() { defer readers.Done(); f.read(s) }()
		return nil
	}, nil)
	r.ConnectFailed, r.FirstError = failed, firstErr
	pubs, pfailed, perr := connectAll(ctx, c, c.publishers, func(int) string { return c.urls[0] }, auth, func(_ int, cl *client) error {
		go readUntilClosed(cl, func() {})
		return nil
	}, nil)
	closeAll := func() {
		for _, cl := range clients {
			if cl != nil {
				cl.close()
			}
		}
		for _, cl := range pubs {
			if cl != nil {
				cl.close()
			}
		}
	}
	defer closeAll()
	if pfailed > 0 {
		return nil, "", fmt.Errorf("%d publishers could not connect: %s", pfailed, perr)
	}
	var live []*subscriber
	for _, s := range subs {
		if s != nil {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		return nil, "", fmt.Errorf("no subscriber connected: %s", firstErr)
	}
	f.nsubs = len(live)
	if c.rate == 0 {
		w := max(c.window, 1)
		f.ring = make([][]atomic.Int32, c.publishers)
		f.credits = make([]chan struct{}, c.publishers)
		for p := range f.ring {
			f.ring[p] = make([]atomic.Int32, w)
			f.credits[p] = make(chan struct{}, w)
			for i := 0; i < w; i++ {
				f.credits[p] <- struct{}{}
			}
		}
	}

	// Publish: warm-up, then the measured window.
	start := time.Now().Add(50 * time.Millisecond)
	end := start.Add(c.warmup + c.duration)
	var interval time.Duration
	if c.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(c.publishers) / c.rate)
	}
	var pubWG sync.WaitGroup
	pubErr := make(chan error, c.publishers)
	for p, cl := range pubs {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			// Publishers at a fixed rate are spread evenly over the interval.
			offset := interval * time.Duration(p) / time.Duration(c.publishers)
			if err := f.publish(ctx, cl, p, start.Add(offset), end, interval); err != nil {
				pubErr <- err
			}
		}()
	}
	if !sleepCtx(ctx, time.Until(start.Add(c.warmup))) {
		return nil, "", ctx.Err()
	}
	m := startMeters(c)
	f.measureTs.Store(mono())
	recv0 := f.received.Load()
	sent0 := totalSent(f)
	if !sleepCtx(ctx, time.Until(end)) {
		return nil, "", ctx.Err()
	}
	m.stop(&r.common)
	recvWindow := f.received.Load() - recv0
	sentWindow := totalSent(f) - sent0
	pubWG.Wait()
	select {
	case err := <-pubErr:
		return nil, "", err
	default:
	}

	// Drain: wait for what is still on its way, then stop everything.
	want := totalSent(f) * uint64(len(live))
	for deadline := time.Now().Add(c.drain); f.received.Load() < want && time.Now().Before(deadline); {
		if !sleepCtx(ctx, 10*time.Millisecond) {
			return nil, "", ctx.Err()
		}
	}
	closeAll()
	readers.Wait()

	r.Sent = totalSent(f)
	r.Expected = want
	r.Duplicated = f.duplicated.Load()
	r.Stalls = f.stalls.Load()
	r.Received, r.Lost, r.LosingSubs, r.Disconnected = f.tally(live)
	if r.WindowS > 0 {
		r.PublishedPerS = round(float64(sentWindow)/r.WindowS, 1)
		r.DeliveredPerS = round(float64(recvWindow)/r.WindowS, 1)
	}
	r.ServerCPUUsPerMsg = perUnit(r.ServerCPUS, recvWindow)
	r.GenCPUUsPerMsg = perUnit(r.GenCPUS, recvWindow)

	// Latency over every subscriber; the cluster split local/remote.
	var all hist
	for i := range all.counts {
		all.counts[i].Store(f.local.counts[i].Load() + f.remote.counts[i].Load())
	}
	all.n.Store(f.local.n.Load() + f.remote.n.Load())
	all.max.Store(max(f.local.max.Load(), f.remote.max.Load()))
	st := all.stats()
	r.LatP50Ms, r.LatP90Ms, r.LatP99Ms, r.LatMaxMs = round(st.P50, 3), round(st.P90, 3), round(st.P99, 3), round(st.Max, 3)

	var b strings.Builder
	rate := "as fast as delivered"
	if c.rate > 0 {
		rate = fmt.Sprintf("%g msg/s", c.rate)
	}
	fmt.Fprintf(&b, "%s %s (%s, %s): %d publishers -> %d subscribers, %s, %d B, %s measured\n",
		scenario, c.name, c.label, c.transport, c.publishers, len(live), rate, c.size, c.duration)
	if failed > 0 {
		fmt.Fprintf(&b, "  connect     %d subscribers failed%s\n", failed, errNote(firstErr))
	}
	fmt.Fprintf(&b, "  throughput  %.0f msg/s published, %.0f deliveries/s\n", r.PublishedPerS, r.DeliveredPerS)
	fmt.Fprintf(&b, "  latency     p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", r.LatP50Ms, r.LatP90Ms, r.LatP99Ms, r.LatMaxMs)
	fmt.Fprintf(&b, "  delivery    %d sent, %d of %d delivered, %d lost (%d subscribers), %d duplicated, %d disconnected\n",
		r.Sent, r.Received, r.Expected, r.Lost, r.LosingSubs, r.Duplicated, r.Disconnected)
	if r.Stalls > 0 {
		fmt.Fprintf(&b, "  window      %d stalls (a message not delivered to everyone within 1 s)\n", r.Stalls)
	}
	if len(c.serverPIDs) > 0 {
		fmt.Fprintf(&b, "  server CPU  %.2f s (%.0f%% of a core) = %.2f µs per delivery\n", r.ServerCPUS, r.ServerCPUPct, r.ServerCPUUsPerMsg)
		fmt.Fprintf(&b, "  server wait %.2f s for a CPU (other processes on its core)\n", r.ServerRunqWaitS)
	}
	if len(c.redisPIDs) > 0 {
		fmt.Fprintf(&b, "  redis CPU   %.2f s\n", r.RedisCPUS)
	}
	fmt.Fprintf(&b, "  generator   %.2f s CPU (%.0f%% of a core) = %.2f µs per delivery\n", r.GenCPUS, r.GenCPUPct, r.GenCPUUsPerMsg)
	if !cluster {
		return r, b.String(), nil
	}

	cr := clusterResult{fanoutResult: r, SubscribersPerURL: make([]int, len(c.urls))}
	for i, s := range subs {
		if s != nil {
			cr.SubscribersPerURL[i%len(c.urls)]++
		}
	}
	ls, rs := f.local.stats(), f.remote.stats()
	cr.LocalP50Ms, cr.LocalP99Ms = round(ls.P50, 3), round(ls.P99, 3)
	cr.RemoteP50Ms, cr.RemoteP99Ms = round(rs.P50, 3), round(rs.P99, 3)
	cr.RemoteMinusLocalP50Ms = round(rs.P50-ls.P50, 3)
	fmt.Fprintf(&b, "  local       %d subscribers: p50 %.2f ms  p99 %.2f ms\n", cr.SubscribersPerURL[0], cr.LocalP50Ms, cr.LocalP99Ms)
	fmt.Fprintf(&b, "  remote      %d subscribers: p50 %.2f ms  p99 %.2f ms  (remote - local p50: %.2f ms)\n",
		len(live)-cr.SubscribersPerURL[0], cr.RemoteP50Ms, cr.RemoteP99Ms, cr.RemoteMinusLocalP50Ms)
	return cr, b.String(), nil
}

// tally counts, once the subscribers' readers have ended, the unique
// deliveries and the losses: every seq below what a publisher sent that a
// subscriber has not seen.
func (f *fanoutRun) tally(subs []*subscriber) (received, lost uint64, losing, disconnected int) {
	for _, s := range subs {
		received += s.got
		var l uint64
		for p, bs := range s.seen {
			n := int(f.sent[p].Load())
			got := 0
			for w := 0; w < len(bs) && w*64 < n; w++ {
				word := bs[w]
				if rem := n - w*64; rem < 64 {
					word &= 1<<rem - 1
				}
				got += bits.OnesCount64(word)
			}
			l += uint64(n - got)
		}
		lost += l
		if l > 0 {
			losing++
		}
		if s.disconnected {
			disconnected++
		}
	}
	return received, lost, losing, disconnected
}

func totalSent(f *fanoutRun) uint64 {
	var n uint64
	for i := range f.sent {
		n += f.sent[i].Load()
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
