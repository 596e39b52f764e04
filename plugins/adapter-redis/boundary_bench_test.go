package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	coreconfig "github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/pluginhost"
	coreserver "github.com/socketfleet/socketfleet/core/server"
	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// BenchmarkBoundary measures what the plugin boundary costs a
// cross-instance broadcast. Two core instances (server.New, AttachCluster,
// Serve: both in this process) share one redis-server; 1,000 WebSocket
// clients, all on instance B, are in room "r"; a publisher client on
// instance A (not in the room) sends chat messages to "r", so every
// delivery crosses from A to B through Redis.
//
// Variants, the same in all but the boundary, each with its own
// redis-server and set up only for the sub-benchmarks that run:
//   - plugin: the real adapter-redis binary, a subprocess launched by
//     pluginhost (Launch, Configure, ClusterLink: the batched gRPC Publish
//     and Subscribe streams), as socket-server runs it;
//   - inprocess: this package's *plugin called directly in the core's
//     process through directLink, a bounded queue drained by one goroutine
//     into Publish with pluginhost's batching (256 messages, 1 ms linger).
//
// Sub-benchmarks, per variant:
//   - throughput: b.N messages as fast as they are delivered, with at most
//     benchWindow messages not yet delivered to every client (so that no
//     queue overflows); msgs/s counts deliveries (message × client).
//   - latency: b.N messages at benchRate a second (30 → 30,000 deliveries/s);
//     p50-ms and p99-ms over every delivery, from the send time in the
//     payload to the client's read.
//   - throughput-1member, latency-1member: the same to a room of one client
//     on B (not the set-up): the cost of one message, which 1,000
//     deliveries a message hide.
//
// and paired/throughput, paired/throughput-1member: both variants set up in
// this process and measured in turns of a few hundred milliseconds, so that
// they see the same load from the rest of the machine (blocks of runs one
// after the other do not, on a shared 2-core machine); loss-% is how much
// lower the plugin's msgs/s is, the median over pairs of turns.
//
// cpu-us/delivery is user+system CPU per delivery of this process (both
// instances, the publisher and the clients, which the variants share) plus
// the adapter plugin subprocesses (plugin variant; plugin-cpu-us/delivery
// is theirs alone). At a fixed rate it is mostly the idle cost of the whole
// set-up. redis-cpu-us/delivery is redis-server's; gc/Mdelivery counts this
// process's GC cycles.
//
//	go test -run '^$' -bench Boundary -benchtime 5s ./plugins/adapter-redis
func BenchmarkBoundary(b *testing.B) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skip("reads subprocess CPU from /proc")
	}
	bin := testkit.Build(b, "./plugins/adapter-redis")
	// -count repeats each leaf in a row; which variant goes first is drawn
	// at random, so that repeated runs favour neither.
	variants := []string{"inprocess", "plugin"}
	if rand.IntN(2) == 0 {
		slices.Reverse(variants)
	}
	for _, v := range variants {
		b.Run(v, func(b *testing.B) {
			env := newBenchEnv(b, v, bin) // alone in the process while it runs
			b.Run("throughput", env.throughput)
			b.Run("latency", env.latency)
			b.Run("throughput-1member", env.throughputOne)
			b.Run("latency-1member", env.latencyOne)
		})
	}
	// The throughputs again, the variants taking turns (chunks of a few
	// hundred milliseconds) so that both see the same machine load; give
	// these a long -benchtime (e.g. 20s) for many pairs of turns.
	b.Run("paired", func(b *testing.B) {
		envs := map[string]*benchEnv{}
		for _, v := range variants {
			envs[v] = newBenchEnv(b, v, bin)
		}
		b.Run("throughput", func(b *testing.B) { paired(b, envs, "r", 100) })
		b.Run("throughput-1member", func(b *testing.B) { paired(b, envs, "s", 2000) })
	})
}

// paired sends b.N messages to room in chunks of chunk messages, the
// variants taking turns, and reports each one's delivered msgs/s and CPU
// per delivery overall, and loss-%: how much lower the plugin's msgs/s is
// than the in-process one's, the median over consecutive pairs of turns
// (robust to bursts of load from the rest of the machine).
func paired(b *testing.B, envs map[string]*benchEnv, room string, chunk int) {
	type total struct {
		elapsed    time.Duration
		deliveries int64
		cpu        time.Duration
	}
	totals := map[string]*total{"inprocess": {}, "plugin": {}}
	turn := []string{"inprocess", "plugin"}
	if rand.IntN(2) == 0 {
		slices.Reverse(turn)
	}
	var ratios []float64 // plugin / inprocess msgs/s, per pair of turns
	var last float64     // msgs/s of the previous turn
	b.ResetTimer()
	for i, left := 0, b.N; left > 0; i++ {
		v := turn[i%2]
		env, t := envs[v], totals[v]
		n := min(chunk, left)
		s0 := env.cpuTime(b)
		start := time.Now()
		run := env.send(b, room, n, 0, benchWindow, false)
		elapsed := time.Since(start)
		s1 := env.cpuTime(b)
		t.elapsed += elapsed
		t.deliveries += run.deliveries.Load()
		t.cpu += s1.self - s0.self + s1.plugins - s0.plugins
		left -= n
		rate := float64(run.deliveries.Load()) / elapsed.Seconds()
		if i%2 == 1 && n == chunk {
			if v == "plugin" {
				ratios = append(ratios, rate/last)
			} else {
				ratios = append(ratios, last/rate)
			}
		}
		last = rate
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	for v, t := range totals {
		if t.deliveries == 0 {
			return // b.N too small for two turns
		}
		b.ReportMetric(float64(t.deliveries)/t.elapsed.Seconds(), "msgs/s-"+v)
		b.ReportMetric(float64(t.cpu.Microseconds())/float64(t.deliveries), "cpu-us/delivery-"+v)
	}
	if len(ratios) > 0 {
		slices.Sort(ratios)
		b.ReportMetric(100*(1-ratios[len(ratios)/2]), "loss-%")
		b.ReportMetric(float64(len(ratios)), "pairs")
	}
}

const (
	benchClients = 1000
	benchWindow  = 256 // throughput: messages sent but not yet delivered to every client
	benchRate    = 30  // latency: messages per second
)

const benchConfig = `
server {
  ping_interval = "5m"
  ping_timeout  = "5m"
  drain {
    timeout = "1s"
  }
}
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
  event "chat" {
    broadcast {
      to             = args[0].room
      require_member = false
    }
  }
}
`

// benchEnv is two instances, the clients and the publisher.
type benchEnv struct {
	redis    *testkit.Redis
	redisPID int
	pids     []int // adapter plugin subprocesses
	pub      *websocket.Conn
	clients  []*benchClient // in room "r"
	solo     *benchClient   // in room "s"
	cur      atomic.Pointer[benchRun]
}

// benchRun tracks one run's deliveries.
type benchRun struct {
	room       []byte         // `"room":"r"`
	need       int32          // clients in room
	counts     []atomic.Int32 // per message: clients that got it
	done       atomic.Int64   // messages every client got
	progress   chan struct{}  // cap 1: done grew
	latency    bool           // record latencies
	deliveries atomic.Int64
	strays     atomic.Int64 // packets that are not this run's messages
}

type benchClient struct {
	conn *websocket.Conn
	lat  []time.Duration // this run's latencies; read once the run is done
}

func newBenchEnv(b *testing.B, variant, bin string) *benchEnv {
	env := &benchEnv{redis: testkit.StartRedis(b)}
	cfg, diags := coreconfig.Parse([]byte(benchConfig), "bench.hcl")
	if diags.HasErrors() {
		b.Fatal(diags.Error())
	}
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	if os.Getenv("SF_TEST_LOG") != "" {
		logger.SetOutput(os.Stderr)
	}
	log := logrus.NewEntry(logger)
	pcfg := sdk.Config(fmt.Sprintf(`{"url":%q}`, env.redis.URL()))
	ctx, cancel := context.WithCancel(context.Background())
	var addrs []string
	var serving sync.WaitGroup
	for i := range 2 {
		s := coreserver.New(cfg, log.WithField("instance", i), "bench")
		switch variant {
		case "plugin":
			host := pluginhost.New(pluginhost.Options{Log: log})
			p, err := host.Launch(ctx, pluginhost.Spec{Kind: sdk.KindAdapter, Name: "redis", Command: bin, Where: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Configure(ctx, pcfg); err != nil {
				b.Fatal(err)
			}
			link := p.ClusterLink(pluginhost.LinkOptions{})
			s.AttachCluster(link)
			env.pids = append(env.pids, p.State().PID)
			b.Cleanup(func() { link.Close(); host.Close() })
		case "inprocess":
			p := &plugin{}
			if err := p.Configure(ctx, pcfg); err != nil {
				b.Fatal(err)
			}
			link := newDirectLink(p)
			s.AttachCluster(link)
			b.Cleanup(func() { link.close(); p.close() })
		default:
			b.Fatalf("variant %q", variant)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		serving.Add(1)
		go func() { defer serving.Done(); _ = s.Serve(ctx, l) }()
	}
	// Registered after the links' cleanups, so it runs first: clients
	// gone, the instances stop (nothing left to drain), then the links.
	b.Cleanup(func() {
		for _, c := range env.clients {
			c.conn.Close()
		}
		if env.pub != nil {
			env.pub.Close()
		}
		cancel()
		serving.Wait()
	})

	rdb := redis.NewClient(&redis.Options{Addr: env.redis.Addr()})
	defer rdb.Close()
	info, err := rdb.InfoMap(context.Background(), "server").Result()
	if err != nil {
		b.Fatal(err)
	}
	if env.redisPID, err = strconv.Atoi(info["Server"]["process_id"]); err != nil {
		b.Fatalf("redis process_id: %v (%v)", err, info)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := rdb.ClientList(context.Background()).Result()
		if strings.Count(list, " psub=1 ") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("no two pattern subscribers on Redis after 30s: %s %v", list, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The clients, all on B, join "r"; then their readers start.
	env.clients = make([]*benchClient, benchClients)
	var wg sync.WaitGroup
	errs := make(chan error, benchClients)
	sem := make(chan struct{}, 32)
	for i := range env.clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conn, err := benchDial(addrs[1], "r")
			if err != nil {
				errs <- err
				return
			}
			env.clients[i] = &benchClient{conn: conn}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	conn, err := benchDial(addrs[1], "s")
	if err != nil {
		b.Fatal(err)
	}
	env.solo = &benchClient{conn: conn}
	for _, c := range append(env.clients, env.solo) {
		go env.read(c)
	}
	pub, err := benchDial(addrs[0], "")
	if err != nil {
		b.Fatal(err)
	}
	env.pub = pub
	// Warm-up: connections, batching goroutines and Redis pipelines busy once.
	env.send(b, "r", 100, 0, benchWindow, false)
	env.send(b, "s", 100, 0, benchWindow, false)
	return env
}

// benchDial connects a client to "/" and makes it join room, if not "".
func benchDial(addr, room string) (*websocket.Conn, error) {
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	expect := func(prefix string) error {
		_, msg, err := conn.ReadMessage()
		if err == nil && !bytes.HasPrefix(msg, []byte(prefix)) {
			err = fmt.Errorf("got %q, want %s...", msg, prefix)
		}
		return err
	}
	steps := []struct{ send, want string }{{"", "0{"}, {"40", "40{"}}
	if room != "" {
		steps = append(steps, struct{ send, want string }{`420["join","` + room + `"]`, "430"})
	}
	for _, s := range steps {
		if s.send != "" {
			if err := conn.WriteMessage(websocket.TextMessage, []byte(s.send)); err != nil {
				conn.Close()
				return nil, err
			}
		}
		if err := expect(s.want); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%s: %w", addr, err)
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, nil
}

// read counts a client's deliveries into the current run.
func (env *benchEnv) read(c *benchClient) {
	var buf bytes.Buffer
	for {
		_, r, err := c.conn.NextReader()
		if err != nil {
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return
		}
		now := time.Now()
		msg := buf.Bytes()
		if len(msg) == 1 && msg[0] == '2' { // ping
			_ = c.conn.WriteMessage(websocket.TextMessage, []byte("3"))
			continue
		}
		run := env.cur.Load()
		n, ok1 := intAfter(msg, `"n":`)
		ts, ok2 := intAfter(msg, `"t":`)
		if run == nil || !ok1 || !ok2 || n < 0 || int(n) >= len(run.counts) || !bytes.Contains(msg, run.room) {
			if run != nil {
				run.strays.Add(1)
			}
			continue
		}
		if run.latency {
			c.lat = append(c.lat, now.Sub(time.Unix(0, ts)))
		}
		run.deliveries.Add(1)
		if run.counts[n].Add(1) == run.need {
			run.done.Add(1)
			select {
			case run.progress <- struct{}{}:
			default:
			}
		}
	}
}

// intAfter parses the integer after key in msg.
func intAfter(msg []byte, key string) (int64, bool) {
	i := bytes.Index(msg, []byte(key))
	if i < 0 {
		return 0, false
	}
	i += len(key)
	j := i
	for j < len(msg) && msg[j] >= '0' && msg[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(msg[i:j]), 10, 64)
	return v, err == nil
}

// send publishes n messages, message i at i/rate (rate 0: as fast as the
// window allows), with at most window not yet delivered to every client,
// and waits until every client has every message (and, with a rate, until
// the n-th period has passed).
func (env *benchEnv) send(b *testing.B, room string, n int, rate float64, window int, latency bool) *benchRun {
	members := env.clients
	if room == "s" {
		members = []*benchClient{env.solo}
	}
	run := &benchRun{room: []byte(`"room":"` + room + `"`), need: int32(len(members)), counts: make([]atomic.Int32, n),
		progress: make(chan struct{}, 1), latency: latency}
	for _, c := range append(env.clients, env.solo) {
		c.lat = c.lat[:0]
	}
	env.cur.Store(run)
	start := time.Now()
	buf := make([]byte, 0, 128)
	stall := time.NewTimer(time.Hour)
	defer stall.Stop()
	wait := func(limit int64) {
		for run.done.Load() < limit {
			stall.Reset(30 * time.Second)
			select {
			case <-run.progress:
			case <-stall.C:
				b.Fatalf("stalled: %d of %d messages delivered to every client (%d deliveries, %d strays)",
					run.done.Load(), n, run.deliveries.Load(), run.strays.Load())
			}
		}
	}
	for i := range n {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) * float64(time.Second) / rate))); d > 0 {
				time.Sleep(d)
			}
		}
		wait(int64(i - window + 1))
		buf = append(buf[:0], `42["chat",{"room":"`...)
		buf = append(buf, room...)
		buf = append(buf, `","n":`...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, `,"t":`...)
		buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
		buf = append(buf, "}]"...)
		if err := env.pub.WriteMessage(websocket.TextMessage, buf); err != nil {
			b.Fatal(err)
		}
	}
	wait(int64(n))
	if rate > 0 {
		if d := time.Until(start.Add(time.Duration(float64(n) * float64(time.Second) / rate))); d > 0 {
			time.Sleep(d)
		}
	}
	env.cur.Store(nil)
	if s := run.strays.Load(); s > 0 {
		b.Errorf("%d packets that were not this run's messages", s)
	}
	if d := run.deliveries.Load(); d != int64(n)*int64(run.need) {
		b.Errorf("%d deliveries, want %d", d, int64(n)*int64(run.need))
	}
	return run
}

// cpuTime is the CPU used so far by this process, the plugin subprocesses
// and redis-server.
func (env *benchEnv) cpuTime(b *testing.B) cpuSample {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	s := cpuSample{self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	for _, pid := range env.pids {
		s.plugins += procCPU(b, pid)
	}
	s.redis = procCPU(b, env.redisPID)
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	s.gcs = ms.NumGC
	return s
}

// cpuSample is CPU used so far: this process, the adapter plugin
// subprocesses, redis-server; and this process's GC cycles.
type cpuSample struct {
	self, plugins, redis time.Duration
	gcs                  uint32
}

// procCPU reads utime+stime of a process from /proc.
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis, from field 3 (state).
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		b.Fatalf("/proc/%d/stat: %q", pid, raw)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		b.Fatal(err)
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

func (env *benchEnv) reportCPU(b *testing.B, deliveries int64, s0 cpuSample) {
	s1 := env.cpuTime(b)
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(deliveries) }
	b.ReportMetric(per(s1.self-s0.self+s1.plugins-s0.plugins), "cpu-us/delivery")
	b.ReportMetric(per(s1.plugins-s0.plugins), "plugin-cpu-us/delivery")
	b.ReportMetric(per(s1.redis-s0.redis), "redis-cpu-us/delivery")
	b.ReportMetric(float64(s1.gcs-s0.gcs)/float64(deliveries)*1e6, "gc/Mdelivery")
}

func (env *benchEnv) throughput(b *testing.B)    { env.maxRate(b, "r") }
func (env *benchEnv) throughputOne(b *testing.B) { env.maxRate(b, "s") }

func (env *benchEnv) maxRate(b *testing.B, room string) {
	s0 := env.cpuTime(b)
	b.ResetTimer()
	start := time.Now()
	run := env.send(b, room, b.N, 0, benchWindow, false)
	elapsed := time.Since(start)
	b.StopTimer()
	deliveries := run.deliveries.Load()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(deliveries)/elapsed.Seconds(), "msgs/s")
	env.reportCPU(b, deliveries, s0)
}

func (env *benchEnv) latency(b *testing.B)    { env.fixedRate(b, "r") }
func (env *benchEnv) latencyOne(b *testing.B) { env.fixedRate(b, "s") }

func (env *benchEnv) fixedRate(b *testing.B, room string) {
	s0 := env.cpuTime(b)
	b.ResetTimer()
	run := env.send(b, room, b.N, benchRate, b.N, true)
	b.StopTimer()
	var all []time.Duration
	for _, c := range append(env.clients, env.solo) {
		all = append(all, c.lat...)
	}
	slices.Sort(all)
	q := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	env.reportCPU(b, run.deliveries.Load(), s0)
}

// directLink is the in-process variant of pluginhost's Link: the same
// batching (a bounded queue, batches of up to 256 taken as they come plus
// 1 ms for more) into the plugin's Publish, called directly; Subscribe and
// requests called directly too. Room changes are ignored: classic mode has
// no use for them.
type directLink struct {
	p      *plugin
	ch     chan sdk.AdapterMessage
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

const (
	directQueue    = 10000
	directMaxBatch = 256
	directLinger   = time.Millisecond
)

var _ coreserver.ClusterLink = (*directLink)(nil)

func newDirectLink(p *plugin) *directLink {
	ctx, cancel := context.WithCancel(context.Background())
	l := &directLink{p: p, ch: make(chan sdk.AdapterMessage, directQueue), ctx: ctx, cancel: cancel}
	l.wg.Add(1)
	go l.run()
	return l
}

func (l *directLink) Send(m sdk.AdapterMessage) bool {
	select {
	case l.ch <- m:
		return true
	default:
		return false
	}
}

func (l *directLink) run() {
	defer l.wg.Done()
	batch := make([]sdk.AdapterMessage, 0, directMaxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case m := <-l.ch:
			batch = append(batch[:0], m)
		}
		timer.Reset(directLinger)
	fill:
		for len(batch) < directMaxBatch {
			select {
			case m := <-l.ch:
				batch = append(batch, m)
			default:
				select {
				case m := <-l.ch:
					batch = append(batch, m)
				case <-timer.C:
					break fill
				case <-l.ctx.Done():
					return
				}
			}
		}
		timer.Stop()
		_ = l.p.Publish(l.ctx, batch) // Publish copies the messages (not their bytes) into its queue
		clear(batch)
	}
}

func (l *directLink) Receive(deliver func([]sdk.AdapterMessage)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		_ = l.p.Subscribe(l.ctx, func(batch []sdk.AdapterMessage) error {
			deliver(batch)
			return nil
		})
	}()
}

func (l *directLink) Request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error) {
	return l.p.Request(ctx, req, answer)
}

func (l *directLink) ServeRequests(namespaces []string, handle func(sdk.IncomingRequest)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		_ = l.p.ServeRequests(l.ctx, namespaces, handle)
	}()
}

func (l *directLink) RoomChanged(sdk.RoomChange)              {}
func (l *directLink) SetRoomSnapshot(func() []sdk.RoomChange) {}
func (l *directLink) close()                                  { l.cancel(); l.wg.Wait() }
