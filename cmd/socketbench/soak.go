package main

// socketbench soak: a long run of two socket-server instances on one Redis
// (started here on free loopback ports), with numbered broadcasts, churning
// subscribers, hostile clients and faults (kill -9 of an adapter plugin,
// a Redis restart), sampled every 10 s into a CSV and judged at the end.
// bench/README.md ("Soak") describes the rules.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type soakConfig struct {
	minutes     float64
	n           int
	churn       float64
	rate        float64
	server      string
	pluginDir   string
	configPath  string
	redisServer string
	out         string
	sample      time.Duration
	killEvery   time.Duration
	headroom    int
	strict      bool
}

// soakInstance is one socket-server process.
type soakInstance struct {
	name string
	url  string
	cmd  *exec.Cmd
	pid  int
}

type soakRun struct {
	c        soakConfig
	token    string
	insts    []*soakInstance
	redis    *exec.Cmd
	redisCmd []string
	out      string
	log      io.Writer

	published atomic.Int64 // seq+1 of the last message whose write began
	sentMu    sync.Mutex
	sentAt    []int64 // per seq: mono ns when its write began; -1 when the write failed
	faults    faultWindows
	startMono int64 // mono() when the load started

	mu            sync.Mutex
	lost          uint64 // deliveries lost outside fault windows
	lostInFaults  uint64
	lostSeqs      map[int]bool // distinct seqs lost in fault windows
	dup, early    uint64
	got           uint64
	finalized     uint64 // subscriber connections accounted
	disconnected  uint64 // subscribers the server disconnected
	connectErrors uint64
	firstErr      string

	hostile map[string]*hostileCount
	hmu     sync.Mutex
}

type hostileCount struct {
	Attempts int64  `json:"attempts"`
	Cut      int64  `json:"cut"`
	NotCut   int64  `json:"not_cut"`
	LastMiss string `json:"last_miss,omitempty"`
}

func soakMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c soakConfig
	fs := flag.NewFlagSet("socketbench soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Float64Var(&c.minutes, "minutes", 30, "length of the run with load")
	fs.IntVar(&c.n, "n", 10000, "subscriber connections, both instances together (fewer when the descriptor limit is lower)")
	fs.Float64Var(&c.churn, "churn", 100, "subscribers leaving (and reconnecting) per second")
	fs.Float64Var(&c.rate, "rate", 5, "numbered broadcasts per second (one publisher socket on the first instance)")
	fs.StringVar(&c.server, "server", "bin/socket-server", "socket-server binary")
	fs.StringVar(&c.pluginDir, "plugin-dir", "bin/plugins", "plugin directory")
	fs.StringVar(&c.configPath, "config", "bench/soak.hcl", "instance configuration (LISTEN_ADDR, REDIS_URL, API_TOKEN, PLUGIN_DIR from the environment)")
	fs.StringVar(&c.redisServer, "redis-server", "redis-server", "redis-server binary")
	fs.StringVar(&c.out, "out", "", "results folder (default bench/results/soak-<UTC time>)")
	fs.DurationVar(&c.sample, "sample", 10*time.Second, "sampling interval")
	fs.DurationVar(&c.killEvery, "kill-every", 0, "kill -9 of an adapter plugin (instances in turn) this often; 0 = every 3 min, at least 2 in a run")
	fs.IntVar(&c.headroom, "fd-headroom", 1000, "descriptors kept free in the generator besides the subscribers")
	fs.BoolVar(&c.strict, "strict-faults", false, "also fail when messages lost during faults outnumber the drops the servers counted")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	out, logf, err := openResults(c.out, "soak")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	c.out = out
	defer logf.Close()
	r := &soakRun{c: c, out: c.out, log: io.MultiWriter(stderr, logf), hostile: map[string]*hostileCount{}, lostSeqs: map[int]bool{}}
	ok, err := r.run(ctx)
	if err != nil {
		r.logf("soak: %v", err)
		return 1
	}
	if !ok {
		return 1
	}
	return 0
}

func (r *soakRun) logf(format string, a ...any) {
	fmt.Fprintf(r.log, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, a...)...)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (r *soakRun) startRedis(port int) error {
	f, err := os.OpenFile(filepath.Join(r.out, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.c.redisServer, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	go func() { _ = cmd.Wait(); f.Close() }()
	r.redis = cmd
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			cn.Close()
			return nil
		}
	}
	return errors.New("redis-server did not listen within 10 s")
}

func (r *soakRun) stopRedis() {
	if r.redis == nil || r.redis.Process == nil {
		return
	}
	_ = r.redis.Process.Signal(syscall.SIGTERM)
	pid := r.redis.Process.Pid
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
	}
	_ = r.redis.Process.Kill()
}

func (r *soakRun) startInstance(name string, port int, redisURL string) (*soakInstance, error) {
	f, err := os.Create(filepath.Join(r.out, "server-"+name+".log"))
	if err != nil {
		return nil, err
	}
	pluginDir, _ := filepath.Abs(r.c.pluginDir)
	cmd := exec.Command(r.c.server, "run", "--config", r.c.configPath)
	cmd.Env = append(os.Environ(), "LISTEN_ADDR=127.0.0.1:"+strconv.Itoa(port), "REDIS_URL="+redisURL,
		"API_TOKEN="+r.token, "PLUGIN_DIR="+pluginDir)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	go func() { _ = cmd.Wait(); f.Close() }()
	in := &soakInstance{name: name, url: "http://127.0.0.1:" + strconv.Itoa(port), cmd: cmd, pid: cmd.Process.Pid}
	if err := r.waitReady(in, 20*time.Second); err != nil {
		return in, err
	}
	return in, nil
}

// waitReady waits for /ready 200 (the plugins up).
func (r *soakRun) waitReady(in *soakInstance, d time.Duration) error {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(in.url + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return fmt.Errorf("instance %s not ready within %s", in.name, d)
}

type soakHealth struct {
	Connections int64            `json:"connections"`
	Goroutines  int64            `json:"goroutines"`
	HeapAlloc   int64            `json:"heap_alloc_bytes"`
	LimitsHit   map[string]int64 `json:"limits_hit"`
	Plugins     []struct {
		Kind     string `json:"kind"`
		Up       bool   `json:"up"`
		Restarts int64  `json:"restarts"`
		PID      int    `json:"pid"`
	} `json:"plugins"`
}

func (r *soakRun) health(in *soakInstance) (soakHealth, error) {
	var h soakHealth
	req, _ := http.NewRequest("GET", in.url+"/health", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

func (h soakHealth) adapter() (pid int, restarts int64, up bool) {
	for _, p := range h.Plugins {
		if p.Kind == "adapter" {
			return p.PID, p.Restarts, p.Up
		}
	}
	return 0, 0, false
}

// dropped reads cluster_messages_dropped_total from /metrics.
func (r *soakRun) dropped(in *soakInstance) (int64, error) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(in.url + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return parseDropped(resp.Body)
}

// parseDropped sums the cluster_messages_dropped_total series of a
// Prometheus text exposition (a namespace prefix allowed).
func parseDropped(rd io.Reader) (int64, error) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
			rest = line[strings.LastIndexByte(line, '}')+1:]
		}
		if !strings.HasSuffix(name, "cluster_messages_dropped_total") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, err
		}
		sum += v
		found = true
	}
	if !found {
		return 0, errors.New("no cluster_messages_dropped_total in /metrics")
	}
	return int64(sum), sc.Err()
}

func countFDs(pid int) int64 {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return int64(len(es))
}

func (r *soakRun) run(ctx context.Context) (bool, error) {
	c := r.c
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		if fit := int(lim.Cur) - c.headroom; c.n > fit {
			r.logf("descriptor limit %d: %d subscribers instead of %d", lim.Cur, fit, c.n)
			r.c.n, c.n = fit, fit
		}
	}
	var tok [16]byte
	for i := range tok {
		tok[i] = "0123456789abcdef"[rand.IntN(16)]
	}
	r.token = "soak-" + string(tok[:])
	rport, err := freePort()
	if err != nil {
		return false, err
	}
	if err := r.startRedis(rport); err != nil {
		return false, err
	}
	defer r.stopRedis()
	redisURL := fmt.Sprintf("redis://127.0.0.1:%d", rport)
	defer func() {
		for _, in := range r.insts {
			if in != nil && in.cmd.Process != nil {
				_ = in.cmd.Process.Signal(syscall.SIGINT)
				_ = in.cmd.Process.Signal(syscall.SIGINT) // a second signal exits at once
			}
		}
		time.Sleep(500 * time.Millisecond)
	}()
	for _, name := range []string{"a", "b"} {
		port, err := freePort()
		if err != nil {
			return false, err
		}
		in, err := r.startInstance(name, port, redisURL)
		if in != nil {
			r.insts = append(r.insts, in)
		}
		if err != nil {
			return false, err
		}
	}
	dur := time.Duration(c.minutes * float64(time.Minute))
	kill := c.killEvery
	if kill <= 0 {
		kill = min(3*time.Minute, dur/3)
	}
	r.logf("soak: %s, %d subscribers (churn %.0f/s), %.1f broadcasts/s, plugin kill every %s, Redis restart at %s; instances %s (pid %d), %s (pid %d); redis %s; results in %s",
		dur, c.n, c.churn, c.rate, kill, dur/2, r.insts[0].url, r.insts[0].pid, r.insts[1].url, r.insts[1].pid, redisURL, r.out)

	csvf, err := os.Create(filepath.Join(r.out, "samples.csv"))
	if err != nil {
		return false, err
	}
	defer csvf.Close()
	if err := writeCSV(csvf, true, nil); err != nil {
		return false, err
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	start := time.Now()
	r.startMono = mono()
	var wg sync.WaitGroup
	subs := r.startSubscribers(loadCtx, &wg)
	r.logf("subscribers connecting")
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); r.publish(loadCtx) }()
	wg.Add(1)
	go func() { defer wg.Done(); r.churnLoop(loadCtx, subs) }()
	for _, h := range hostileKinds {
		wg.Add(1)
		go func() { defer wg.Done(); r.hostileLoop(loadCtx, h.name, h.bound, h.fn) }()
	}
	faultsDone := make(chan struct{})
	go func() { defer close(faultsDone); r.faultLoop(loadCtx, start, dur, kill, rport) }()

	var rows []sample
	tick := time.NewTicker(c.sample)
	defer tick.Stop()
	end := time.After(dur)
	takeSample := func() []sample {
		t := time.Since(start).Seconds()
		var dropped int64
		var batch []sample
		for _, in := range r.insts {
			s := sample{T: t, Instance: in.name, RSS: -1, FDs: countFDs(in.pid)}
			if rss, err := procRSS(in.pid); err == nil {
				s.RSS = rss
			}
			if h, err := r.health(in); err == nil {
				s.Heap, s.Goroutines, s.Connections = h.HeapAlloc, h.Goroutines, h.Connections
				_, s.PluginRestarts, _ = h.adapter()
			} else {
				r.logf("health %s: %v", in.name, err)
			}
			if d, err := r.dropped(in); err == nil {
				dropped += d
			} else {
				r.logf("metrics %s: %v", in.name, err)
			}
			batch = append(batch, s)
		}
		r.mu.Lock()
		for i := range batch {
			batch[i].Lost, batch[i].LostInFaults, batch[i].Duplicated, batch[i].Dropped = r.lost, r.lostInFaults, r.dup, dropped
		}
		r.mu.Unlock()
		if err := writeCSV(csvf, false, batch); err != nil {
			r.logf("csv: %v", err)
		}
		a, b := batch[0], batch[1]
		r.logf("t=%4.0fs a: rss %d MiB heap %d MiB gor %d fds %d conns %d | b: rss %d MiB heap %d MiB gor %d fds %d conns %d | sent %d lost %d (in faults %d) dup %d dropped %d",
			t, a.RSS>>20, a.Heap>>20, a.Goroutines, a.FDs, a.Connections, b.RSS>>20, b.Heap>>20, b.Goroutines, b.FDs, b.Connections,
			r.published.Load(), a.Lost, a.LostInFaults, a.Duplicated, dropped)
		return batch
	}
loop:
	for {
		select {
		case <-tick.C:
			rows = append(rows, takeSample()...)
		case <-end:
			break loop
		case <-ctx.Done():
			r.logf("interrupted")
			break loop
		}
	}
	// The end: publishing stops, every subscriber waits for the last
	// message (bounded) and is accounted.
	stopLoad()
	<-pubDone
	<-faultsDone
	r.logf("load stopped; waiting for subscribers to drain")
	wg.Wait()
	// After the drain: in the CSV (descriptors and goroutines back to the
	// baseline?), not in the fit, which covers the time under load. The
	// run-wide lost/dup counts are final only now: the last rows under load
	// carry them too, for the picture.
	final := takeSample()
	if n := len(final); len(rows) >= n {
		for i, f := range final {
			j := len(rows) - n + i
			rows[j].Lost, rows[j].LostInFaults, rows[j].Duplicated, rows[j].Dropped = f.Lost, f.LostInFaults, f.Duplicated, f.Dropped
		}
	}
	return r.verdict(rows, final)
}

// publish sends numbered messages at the configured rate on one socket of
// the first instance, reconnecting when needed.
func (r *soakRun) publish(ctx context.Context) {
	interval := time.Duration(float64(time.Second) / r.c.rate)
	var cl *client
	defer func() {
		if cl != nil {
			cl.close()
		}
	}()
	next := time.Now()
	var buf []byte
	for seq := 0; ; {
		if cl == nil {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err := dial(dctx, dialOptions{baseURL: r.insts[0].url, path: "/socket.io/", transport: "websocket"})
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r.noteErr("publisher: " + err.Error())
				time.Sleep(time.Second)
				continue
			}
			cl = c
			go readUntilClosed(c, func() {})
		}
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		} else if ctx.Err() != nil {
			return
		}
		ts := mono()
		r.sentMu.Lock()
		r.sentAt = append(r.sentAt, ts)
		r.sentMu.Unlock()
		r.published.Store(int64(seq + 1))
		buf = appendMessage(buf[:0], `"soak"`, 0, seq, ts, 128)
		if err := cl.send(buf); err != nil {
			r.sentMu.Lock()
			r.sentAt[seq] = -1 // not counted: it may not have left
			r.sentMu.Unlock()
			r.noteErr("publisher send: " + err.Error())
			cl.close()
			cl = nil
		}
		seq++
	}
}

func (r *soakRun) noteErr(e string) {
	r.mu.Lock()
	if r.firstErr == "" {
		r.firstErr = e
		r.mu.Unlock()
		r.logf("first error: %s", e)
		return
	}
	r.mu.Unlock()
}

// soakSlot is one subscriber position: it connects, joins, receives, and
// when told to leave, drains to the last message sent, closes and connects
// again.
type soakSlot struct {
	leave chan struct{}
}

func (r *soakRun) startSubscribers(ctx context.Context, wg *sync.WaitGroup) []*soakSlot {
	slots := make([]*soakSlot, r.c.n)
	sem := make(chan struct{}, 100) // handshakes in flight
	for i := range slots {
		s := &soakSlot{leave: make(chan struct{}, 1)}
		slots[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.slotLoop(ctx, s, r.insts[i%len(r.insts)].url, sem)
		}()
	}
	return slots
}

func (r *soakRun) slotLoop(ctx context.Context, s *soakSlot, url string, sem chan struct{}) {
	for ctx.Err() == nil {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cl, err := dial(dctx, dialOptions{baseURL: url, path: "/socket.io/", transport: "websocket"})
		if err == nil {
			err = cl.joinRoom(dctx, "soak")
			if err != nil {
				cl.close()
			}
		}
		cancel()
		<-sem
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			r.connectErrors++
			r.mu.Unlock()
			r.noteErr("subscriber: " + err.Error())
			time.Sleep(time.Second)
			continue
		}
		l := newLedger(int(r.published.Load()))
		var high atomic.Int64
		high.Store(-1)
		gone := make(chan struct{})
		var serverClosed bool
		go func() {
			defer close(gone)
			for {
				p, err := cl.next()
				if err != nil {
					select {
					case <-cl.closed:
					default:
						serverClosed = true
					}
					return
				}
				if _, seq, _, ok := scanMessage(p); ok {
					l.receive(seq)
					high.Store(int64(l.high))
				}
			}
		}()
		last := -1
		select {
		case <-s.leave:
		case <-ctx.Done():
		case <-gone:
		}
		select {
		case <-gone:
			// The server closed the connection: what it held is not judged;
			// the expected range ends at what arrived.
			r.mu.Lock()
			r.disconnected++
			r.mu.Unlock()
			last = l.high
		default:
			last = int(r.published.Load()) - 1
			if ctx.Err() != nil {
				// The end of the run: the publisher has stopped; wait for the
				// very last message.
				last = int(r.published.Load()) - 1
			}
			for deadline := time.Now().Add(10 * time.Second); high.Load() < int64(last) && time.Now().Before(deadline); {
				select {
				case <-gone:
					deadline = time.Time{}
				case <-time.After(20 * time.Millisecond):
				}
			}
			cl.close()
			<-gone
			if serverClosed {
				r.mu.Lock()
				r.disconnected++
				r.mu.Unlock()
			}
		}
		r.account(l, last)
	}
}

// account adds a finished subscriber's ledger to the run's counts: each
// missing message is lost in a fault window or outside, by the time its
// write began.
func (r *soakRun) account(l *ledger, last int) {
	r.sentMu.Lock()
	sentAt := r.sentAt
	r.sentMu.Unlock()
	var lost, inFaults uint64
	var faultSeqs []int
	l.missing(last, func(seq int) {
		if seq >= len(sentAt) || sentAt[seq] < 0 {
			return // not sent (the publisher's write failed)
		}
		if r.faults.contains(sentAt[seq]) {
			inFaults++
			faultSeqs = append(faultSeqs, seq)
		} else {
			lost++
		}
	})
	r.mu.Lock()
	r.lost += lost
	r.lostInFaults += inFaults
	for _, s := range faultSeqs {
		r.lostSeqs[s] = true
	}
	r.dup += l.dup
	r.early += l.early
	r.got += l.got
	r.finalized++
	r.mu.Unlock()
}

// churnLoop tells random subscribers to leave at the configured rate (each
// reconnects at once: the connection count stays about n).
func (r *soakRun) churnLoop(ctx context.Context, slots []*soakSlot) {
	if r.c.churn <= 0 {
		return
	}
	t := time.NewTicker(time.Duration(float64(time.Second) / r.c.churn))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			select {
			case slots[rand.IntN(len(slots))].leave <- struct{}{}:
			default:
			}
		}
	}
}

// faultLoop kills an adapter plugin (instances in turn) every kill, and
// restarts Redis once at half time. Each fault opens a window that closes
// when the instances are ready again (/ready: plugins up) plus a margin for
// the subscriptions to be made again.
// faultLead: a fault window opens this long before the fault itself, since
// a message written just before it may still be on its way through the
// process killed (or the Redis stopped).
const faultLead = time.Second

func (r *soakRun) faultLoop(ctx context.Context, start time.Time, dur, kill time.Duration, redisPort int) {
	const margin = 5 * time.Second
	nextKill := start.Add(kill)
	redisAt := start.Add(dur / 2)
	redisDone := false
	victim := 0
	for {
		var wait time.Duration
		if !redisDone && redisAt.Before(nextKill) {
			wait = time.Until(redisAt)
		} else {
			wait = time.Until(nextKill)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, 0)):
		}
		if ctx.Err() != nil {
			return
		}
		if !redisDone && !time.Now().Before(redisAt) {
			redisDone = true
			w := r.faults.open(mono() - int64(faultLead))
			r.logf("fault: Redis restart")
			r.stopRedis()
			time.Sleep(time.Second)
			if err := r.startRedis(redisPort); err != nil {
				r.noteErr("redis restart: " + err.Error())
			}
			for _, in := range r.insts {
				_ = r.waitReady(in, 30*time.Second)
			}
			time.Sleep(margin)
			r.faults.close(w, mono())
			r.logf("fault: Redis back")
			continue
		}
		nextKill = nextKill.Add(kill)
		in := r.insts[victim%len(r.insts)]
		victim++
		h, err := r.health(in)
		pid, restarts, _ := h.adapter()
		if err != nil || pid == 0 {
			r.noteErr(fmt.Sprintf("no adapter pid for %s: %v", in.name, err))
			continue
		}
		w := r.faults.open(mono() - int64(faultLead))
		_ = syscall.Kill(pid, syscall.SIGKILL)
		r.logf("fault: kill -9 of %s's adapter plugin (pid %d)", in.name, pid)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			h, err := r.health(in)
			if p, n, up := h.adapter(); err == nil && up && n > restarts && p != pid {
				r.logf("fault: %s's adapter plugin back (pid %d, restarts %d)", in.name, p, n)
				break
			}
		}
		time.Sleep(margin)
		r.faults.close(w, mono())
	}
}

type soakSummary struct {
	Minutes          float64                  `json:"minutes"`
	Subscribers      int                      `json:"subscribers"`
	Churn            float64                  `json:"churn_per_s"`
	Rate             float64                  `json:"rate_per_s"`
	Sent             int64                    `json:"sent"`
	Accounted        uint64                   `json:"subscriber_connections_accounted"`
	Received         uint64                   `json:"received"`
	Lost             uint64                   `json:"lost_outside_faults"`
	LostInFaults     uint64                   `json:"lost_in_faults"`
	LostMsgsInFaults int                      `json:"distinct_messages_lost_in_faults"`
	Dropped          int64                    `json:"dropped_counted"`
	Duplicated       uint64                   `json:"duplicated"`
	Early            uint64                   `json:"early_not_counted"`
	Disconnected     uint64                   `json:"disconnected_by_server"`
	ConnectErrors    uint64                   `json:"connect_errors"`
	FirstError       string                   `json:"first_error"`
	Faults           [][2]float64             `json:"fault_windows_s"`
	Hostile          map[string]*hostileCount `json:"hostile"`
	LimitsHit        map[string]int64         `json:"limits_hit"`
	Growth           []growth                 `json:"growth"`
	AfterDrain       []map[string]any         `json:"after_drain"`
	Failures         []string                 `json:"failures"`
	Pass             bool                     `json:"pass"`
}

func (r *soakRun) verdict(rows, final []sample) (bool, error) {
	var s soakSummary
	s.Minutes, s.Subscribers, s.Churn, s.Rate = r.c.minutes, r.c.n, r.c.churn, r.c.rate
	s.Sent = r.published.Load()
	r.mu.Lock()
	s.Accounted, s.Received, s.Lost, s.LostInFaults = r.finalized, r.got, r.lost, r.lostInFaults
	s.LostMsgsInFaults, s.Duplicated, s.Early = len(r.lostSeqs), r.dup, r.early
	s.Disconnected, s.ConnectErrors, s.FirstError = r.disconnected, r.connectErrors, r.firstErr
	r.mu.Unlock()
	if len(final) > 0 {
		s.Dropped = final[0].Dropped
		for _, f := range final {
			s.AfterDrain = append(s.AfterDrain, map[string]any{"instance": f.Instance, "fds": f.FDs, "goroutines": f.Goroutines, "connections": f.Connections, "rss_bytes": f.RSS})
		}
	}
	s.LimitsHit = map[string]int64{}
	for _, in := range r.insts {
		if h, err := r.health(in); err == nil {
			for k, v := range h.LimitsHit {
				s.LimitsHit[k] += v
			}
		}
	}
	r.hmu.Lock()
	s.Hostile = r.hostile
	r.hmu.Unlock()
	r.faults.mu.Lock()
	for _, w := range r.faults.w {
		if w[1] < 0 {
			w[1] = mono()
		}
		s.Faults = append(s.Faults, [2]float64{float64(w[0]-r.startMono) / 1e9, float64(w[1]-r.startMono) / 1e9})
	}
	r.faults.mu.Unlock()
	s.Growth = judgeAll(rows)
	for _, g := range s.Growth {
		if g.Samples < minGrowthSamples {
			s.Failures = append(s.Failures, fmt.Sprintf("too short to judge growth: %d samples in the second half, %d needed", g.Samples, minGrowthSamples))
			break
		}
		if g.Grows {
			s.Failures = append(s.Failures, fmt.Sprintf("%s of instance %s grows: %.1f%% of its mean (%.4g) per 10 min over the second half (limit %.0f%%)",
				g.Series, g.Instance, g.RelPer10Min*100, g.Mean, growthLimit*100))
		}
	}
	if s.Lost > 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("%d deliveries lost outside fault windows", s.Lost))
	}
	if s.Duplicated > 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("%d deliveries duplicated", s.Duplicated))
	}
	if r.c.strict && int64(s.LostMsgsInFaults) > s.Dropped {
		s.Failures = append(s.Failures, fmt.Sprintf("%d messages lost during faults, %d counted as dropped", s.LostMsgsInFaults, s.Dropped))
	}
	for name, h := range s.Hostile {
		if h.NotCut > 0 {
			s.Failures = append(s.Failures, fmt.Sprintf("hostile %s: %d of %d not cut (%s)", name, h.NotCut, h.Attempts, h.LastMiss))
		}
	}
	s.Pass = len(s.Failures) == 0
	b, _ := json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(filepath.Join(r.out, "summary.json"), append(b, '\n'), 0o644); err != nil {
		return false, err
	}
	f, err := os.Create(filepath.Join(r.out, "soak.svg"))
	if err != nil {
		return false, err
	}
	title := fmt.Sprintf("%s: %.1f min, %d subscribers, churn %.0f/s, %.0f msg/s (fault windows shaded)",
		filepath.Base(r.out), r.c.minutes, r.c.n, r.c.churn, r.c.rate)
	err = writeSVG(f, rows, s.Faults, title)
	f.Close()
	if err != nil {
		return false, err
	}
	r.logf("sent %d messages; %d subscriber connections accounted, %d deliveries; lost %d outside faults, %d in faults (%d distinct messages; the servers counted %d dropped); duplicated %d; disconnected by the server %d",
		s.Sent, s.Accounted, s.Received, s.Lost, s.LostInFaults, s.LostMsgsInFaults, s.Dropped, s.Duplicated, s.Disconnected)
	for _, g := range s.Growth {
		r.logf("growth %s %-10s mean %12.0f slope %10.3f/s = %+6.2f%% of the mean per 10 min", g.Instance, g.Series, g.Mean, g.SlopePerS, g.RelPer10Min*100)
	}
	for _, h := range hostileKinds {
		if c := s.Hostile[h.name]; c != nil {
			r.logf("hostile %-14s attempts %d cut %d not cut %d", h.name, c.Attempts, c.Cut, c.NotCut)
			if h.name == "idle-tcp" {
				r.logf("  (the last idle connection was closed after %.1f s)", time.Duration(idleCutAfter.Load()).Seconds())
			}
		}
	}
	if s.Pass {
		r.logf("PASS: results in %s", r.out)
		return true, nil
	}
	for _, f := range s.Failures {
		r.logf("FAIL: %s", f)
	}
	return false, nil
}
