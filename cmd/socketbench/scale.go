package main

// socketbench scale: idle WebSocket connections up to the descriptor
// limit, on one instance and on a fleet of instances on one Redis, with
// numbered broadcasts to all of them and room churn (bench/README.md,
// "Scale"). The connections come from worker processes (scaleworker.go),
// each within the same descriptor limit and each from its own loopback
// source address, so that neither descriptors nor ephemeral ports run
// out.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Descriptors kept aside: a server's listener, epoll sets, logs, plugin
// connections and the API; a worker's standard streams and runtime.
const (
	scaleServerReserve = 500
	scaleWorkerReserve = 100
)

type scaleConfig struct {
	sizes       string
	fleetConns  int
	instances   int
	rest        time.Duration
	churn       time.Duration
	churnRooms  int
	bcast       int
	inFlight    int
	perWorker   int
	server      string
	pluginDir   string
	config      string
	fleetConfig string
	redisServer string
	out         string
}

// nofile returns the descriptor limit (hard) after raising the soft one to it.
func nofile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, fmt.Errorf("setrlimit: %w", err)
		}
	}
	return rl.Max, nil
}

// scaleSizing is what a descriptor limit allows: connections per worker
// process and on one instance.
func scaleSizing(limit uint64, perWorker int) (worker, instance int) {
	worker = int(limit) - scaleWorkerReserve
	if perWorker > 0 && perWorker < worker {
		worker = perWorker
	}
	return max(worker, 1), max(int(limit)-scaleServerReserve, 1)
}

// splitWorkers spreads total connections evenly over as few workers as
// hold them (at most per each).
func splitWorkers(total, per int) []int {
	if total <= 0 || per <= 0 {
		return nil
	}
	n := (total + per - 1) / per
	out := make([]int, n)
	for i := range out {
		out[i] = total / n
		if i < total%n {
			out[i]++
		}
	}
	return out
}

// parseSizes reads "2000,10000,max" (max: the instance limit).
func parseSizes(spec string, limit int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		if f == "max" {
			out = append(out, limit)
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-sizes: %q is not a count or max", f)
		}
		if n > limit {
			return nil, fmt.Errorf("-sizes: %d is over what one instance may hold here (%d)", n, limit)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// sourceAddr is worker i's loopback source address: 127.net.0.2, .3, ...
// A run picks net at random: the connections of a run that just ended
// wait out TIME_WAIT (60 s) on their ports, which the next run from the
// same address could not take.
func sourceAddr(net, i int) string {
	return fmt.Sprintf("127.%d.%d.%d", net&255, (i+2)>>8&255, (i+2)&255)
}

func numCPU() int { return runtime.NumCPU() }

type scaleInstResult struct {
	Instance        string  `json:"instance"`
	Conns           int     `json:"conns"`
	Failed          int     `json:"failed"`
	FirstError      string  `json:"first_error,omitempty"`
	Workers         int     `json:"workers"`
	ConnectS        float64 `json:"connect_s"`
	RSSBefore       int64   `json:"rss_before_bytes"`
	RSSAfter        int64   `json:"rss_after_connect_bytes"`
	RSSRest         int64   `json:"rss_after_rest_bytes"`
	RSSPerConn      float64 `json:"rss_per_conn_bytes"`      // after connecting
	RSSPerConnRest  float64 `json:"rss_per_conn_rest_bytes"` // after the rest
	PluginRSS       int64   `json:"plugin_rss_bytes"`
	Goroutines      int     `json:"goroutines"`
	GoroutinesStart int     `json:"goroutines_before"`
	RestCPUS        float64 `json:"rest_cpu_s"`
	RestCPUPct      float64 `json:"rest_cpu_pct"`
	RestCPUUsConnS  float64 `json:"rest_cpu_us_per_conn_s"`
	BcastCPUS       float64 `json:"bcast_cpu_s"`
	Delivered       int64   `json:"delivered"`
	CPUPerDelivUs   float64 `json:"cpu_per_delivery_us"`
	CompleteP50Ms   float64 `json:"complete_p50_ms"`
	CompleteMaxMs   float64 `json:"complete_max_ms"`
	Lost            int64   `json:"lost"`
	Dups            int64   `json:"dups"`
	Alive           int     `json:"alive_after"`
}

type scaleRunResult struct {
	Name       string            `json:"name"`
	Instances  []scaleInstResult `json:"instances"`
	Published  int               `json:"published"`
	PublishErr string            `json:"publish_error,omitempty"`
	RedisCPUS  float64           `json:"redis_cpu_s,omitempty"`
	BcastS     float64           `json:"bcast_window_s"`
	RestS      float64           `json:"rest_window_s"`
	// Churn: joins and leaves per second, their count, and the server's
	// CPU per operation beyond its CPU at rest.
	ChurnRate   float64 `json:"churn_ops_per_s,omitempty"`
	ChurnOps    int     `json:"churn_ops,omitempty"`
	ChurnCPUS   float64 `json:"churn_cpu_s,omitempty"`
	ChurnUsOp   float64 `json:"churn_cpu_us_per_op,omitempty"`
	ChurnErrors string  `json:"churn_errors,omitempty"`
	// Rooms with a member after the churn (GET /api/v1/rooms).
	ChurnRoomsSeen int `json:"churn_rooms_seen,omitempty"`
	// The kernel's slab (/proc/meminfo Slab) grown while connecting, per
	// connection: both ends of a loopback connection (client and
	// server socket, their files and epoll entries) are in it.
	SlabPerConn float64 `json:"kernel_slab_per_conn_bytes"`
}

type scaleResult struct {
	Time        string           `json:"time"`
	Machine     string           `json:"machine"`
	CPUs        int              `json:"cpus"`
	NoFile      uint64           `json:"nofile_hard"`
	PortRange   string           `json:"ip_local_port_range"`
	PerWorker   int              `json:"conns_per_worker_max"`
	PerInstance int              `json:"conns_per_instance_max"`
	ChurnRooms  int              `json:"churn_rooms"`
	Runs        []scaleRunResult `json:"runs"`
}

func scaleMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c scaleConfig
	fs := flag.NewFlagSet("socketbench scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.sizes, "sizes", "2000,10000,max", "idle connections on one instance (max: the descriptor limit less a reserve)")
	fs.IntVar(&c.fleetConns, "fleet", 55000, "connections over the fleet's instances together (0: no fleet run)")
	fs.IntVar(&c.instances, "instances", 3, "instances of the fleet run, on one Redis")
	fs.DurationVar(&c.rest, "rest", 30*time.Second, "CPU at rest is measured over this (heartbeats included)")
	fs.IntVar(&c.bcast, "broadcasts", 10, "numbered broadcasts to every connection, 1 per second")
	fs.DurationVar(&c.churn, "churn", 15*time.Second, "room churn (10 joins/leaves per second per 100 connections) at the smallest and largest size; 0: none")
	fs.IntVar(&c.churnRooms, "rooms", 1000, "rooms of the churn")
	fs.IntVar(&c.inFlight, "c", 200, "handshakes in flight per worker")
	fs.IntVar(&c.perWorker, "per-worker", 0, "connections per worker process at most (0: the descriptor limit allows)")
	fs.StringVar(&c.server, "server", "bin/socket-server", "socket-server binary")
	fs.StringVar(&c.pluginDir, "plugin-dir", "bin/plugins", "plugin directory")
	fs.StringVar(&c.config, "config", "bench/scale.hcl", "one instance's configuration")
	fs.StringVar(&c.fleetConfig, "fleet-config", "bench/scale-redis.hcl", "the fleet's configuration (Redis adapter)")
	fs.StringVar(&c.redisServer, "redis-server", "redis-server", "redis-server binary")
	fs.StringVar(&c.out, "out", "", "result folder (default bench/results/scale-<UTC time>)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if c.bcast < 1 || c.bcast >= scaleMaxSeq || c.instances < 1 || c.churnRooms < 1 || c.inFlight < 1 {
		fmt.Fprintf(stderr, "-broadcasts (1..%d), -instances, -rooms and -c must be positive\n", scaleMaxSeq-1)
		return 2
	}
	limit, err := nofile()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	perWorker, perInst := scaleSizing(limit, c.perWorker)
	sizes, err := parseSizes(c.sizes, perInst)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if c.fleetConns > c.instances*perInst {
		fmt.Fprintf(stderr, "-fleet %d: %d instances hold %d at most here\n", c.fleetConns, c.instances, c.instances*perInst)
		return 2
	}
	out, logf, err := openResults(c.out, "scale")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	c.out = out
	defer logf.Close()
	s := &scaleRun{c: c, log: io.MultiWriter(stderr, logf), perWorker: perWorker, srcNet: rand.IntN(250)}
	res := scaleResult{
		Time: time.Now().UTC().Format(time.RFC3339), Machine: machine(), CPUs: numCPU(),
		NoFile: limit, PortRange: readTrim("/proc/sys/net/ipv4/ip_local_port_range"),
		PerWorker: perWorker, PerInstance: perInst, ChurnRooms: c.churnRooms,
	}
	s.logf("descriptor limit %d: %d connections per worker, %d per instance; sizes %v, fleet %d over %d",
		limit, perWorker, perInst, sizes, c.fleetConns, c.instances)
	failed := false
	for i, n := range sizes {
		churn := c.churn > 0 && (i == 0 || i == len(sizes)-1)
		r, err := s.run(ctx, fmt.Sprintf("single-%d", n), []int{n}, churn)
		if err != nil {
			s.logf("single %d: %v", n, err)
			return 1
		}
		failed = failed || !r.ok()
		res.Runs = append(res.Runs, *r)
	}
	if c.fleetConns > 0 {
		per := splitWorkers(c.fleetConns, (c.fleetConns+c.instances-1)/c.instances)
		r, err := s.run(ctx, fmt.Sprintf("fleet-%dx%d", len(per), c.fleetConns), per, false)
		if err != nil {
			s.logf("fleet: %v", err)
			return 1
		}
		failed = failed || !r.ok()
		res.Runs = append(res.Runs, *r)
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	table := scaleTable(&res)
	if err := errors.Join(os.WriteFile(filepath.Join(c.out, "scale.json"), append(b, '\n'), 0o644),
		os.WriteFile(filepath.Join(c.out, "table.md"), []byte(table), 0o644)); err != nil {
		s.logf("%v", err)
		return 1
	}
	fmt.Fprint(s.log, table)
	s.logf("results in %s", c.out)
	line, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "%s\n", line)
	if failed {
		s.logf("FAIL: failed connections, lost or duplicated deliveries (above)")
		return 1
	}
	return 0
}

// ok: every connection made and alive, every broadcast delivered once.
func (r *scaleRunResult) ok() bool {
	if r.PublishErr != "" {
		return false
	}
	for _, in := range r.Instances {
		if in.Failed > 0 || in.Lost > 0 || in.Dups > 0 || in.Alive != in.Conns {
			return false
		}
	}
	return true
}

type scaleRun struct {
	c         scaleConfig
	log       io.Writer
	perWorker int
	srcNet    int // second octet of the source addresses
	nextSrc   int
}

func (s *scaleRun) logf(format string, a ...any) {
	fmt.Fprintf(s.log, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, a...)...)
}

// scaleWorkerProc is a running worker and the instance it connects to.
type scaleWorkerProc struct {
	inst int
	n    int
	src  string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	done chan struct{}
}

func (s *scaleRun) startWorker(inst, n int) (*scaleWorkerProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	w := &scaleWorkerProc{inst: inst, n: n, src: sourceAddr(s.srcNet, s.nextSrc), done: make(chan struct{})}
	s.nextSrc++
	w.cmd = exec.Command(self, "scale-worker")
	w.cmd.Stderr = s.log
	if w.in, err = w.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w.out = bufio.NewScanner(out)
	w.out.Buffer(make([]byte, 64<<10), 16<<20)
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = w.cmd.Wait(); close(w.done) }()
	return w, nil
}

func (w *scaleWorkerProc) call(cmd workerCmd) (workerReply, error) {
	b, _ := json.Marshal(cmd)
	if _, err := w.in.Write(append(b, '\n')); err != nil {
		return workerReply{}, fmt.Errorf("worker %s: %w", w.src, err)
	}
	if !w.out.Scan() {
		return workerReply{}, fmt.Errorf("worker %s ended: %v", w.src, w.out.Err())
	}
	var r workerReply
	if err := json.Unmarshal(w.out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("worker %s: %w", w.src, err)
	}
	if !r.OK && r.Err != "" {
		return r, fmt.Errorf("worker %s: %s", w.src, r.Err)
	}
	return r, nil
}

func (w *scaleWorkerProc) stop() {
	_ = w.in.Close()
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
	}
}

// callAll runs cmd on every worker at once.
func callAll(ws []*scaleWorkerProc, cmd func(*scaleWorkerProc) workerCmd) ([]workerReply, error) {
	out := make([]workerReply, len(ws))
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = w.call(cmd(w))
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

type scaleHealth struct {
	Connections int64 `json:"connections"`
	Goroutines  int   `json:"goroutines"`
}

func getHealth(url string) (scaleHealth, error) {
	var h scaleHealth
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url + "/health")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// run is one measurement: len(perInst) instances (on Redis when more
// than one), perInst[i] connections on instance i.
func (s *scaleRun) run(ctx context.Context, name string, perInst []int, churn bool) (_ *scaleRunResult, err error) {
	dir := filepath.Join(s.c.out, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := s.c.config
	if len(perInst) > 1 {
		cfg = s.c.fleetConfig
	}
	fr := &fleetRun{c: fleetConfig{server: s.c.server, pluginDir: s.c.pluginDir, configPath: cfg, redisServer: s.c.redisServer},
		dir: dir, log: s.log, token: "scale-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	defer fr.cleanup()
	if len(perInst) > 1 {
		if err := fr.startRedis(); err != nil {
			return nil, fmt.Errorf("redis-server: %w", err)
		}
	}
	for i := range perInst {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		in := &fleetInst{idx: i, name: strconv.Itoa(i), port: port, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
		fr.insts = append(fr.insts, in)
		if err := fr.start(in); err != nil {
			return nil, err
		}
	}
	pids := make([]int, len(fr.insts))
	for i, in := range fr.insts {
		pids[i] = in.cmd.Process.Pid
	}
	var workers []*scaleWorkerProc
	defer func() {
		for _, w := range workers {
			w.stop()
		}
	}()
	for i, n := range perInst {
		for _, k := range splitWorkers(n, s.perWorker) {
			w, err := s.startWorker(i, k)
			if err != nil {
				return nil, err
			}
			workers = append(workers, w)
		}
	}
	res := &scaleRunResult{Name: name, Instances: make([]scaleInstResult, len(perInst))}
	time.Sleep(time.Second)
	for i, in := range fr.insts {
		r := &res.Instances[i]
		r.Instance, r.Conns = in.name, perInst[i]
		if r.RSSBefore, err = procRSS(pids[i]); err != nil {
			return nil, err
		}
		h, err := getHealth(in.url)
		if err != nil {
			return nil, err
		}
		r.GoroutinesStart = h.Goroutines
	}

	slab0 := meminfo("Slab")
	s.logf("%s: %d connections over %d instance(s) from %d worker(s)", name, sum(perInst), len(perInst), len(workers))
	replies, err := callAll(workers, func(w *scaleWorkerProc) workerCmd {
		return workerCmd{Cmd: "connect", URL: fr.insts[w.inst].url, N: w.n, Src: w.src, InFlight: s.c.inFlight}
	})
	if err != nil {
		return nil, err
	}
	for k, w := range workers {
		r := &res.Instances[w.inst]
		r.Workers++
		r.Failed += replies[k].Failed
		r.ConnectS = max(r.ConnectS, replies[k].Secs)
		if r.FirstError == "" {
			r.FirstError = replies[k].FirstErr
		}
	}
	time.Sleep(3 * time.Second)
	connected := 0
	for _, in := range res.Instances {
		connected += in.Conns - in.Failed
	}
	res.SlabPerConn = round(float64(meminfo("Slab")-slab0)/float64(max(1, connected)), 0)
	s.logf("  kernel slab %+.0f B per connection (both ends)", res.SlabPerConn)
	for i, in := range fr.insts {
		r := &res.Instances[i]
		r.RSSAfter, _ = procRSS(pids[i])
		h, err := getHealth(in.url)
		if err != nil {
			return nil, err
		}
		r.Goroutines = h.Goroutines
		if int(h.Connections) != r.Conns-r.Failed {
			s.logf("%s instance %s: %d connections on the server, %d made", name, in.name, h.Connections, r.Conns-r.Failed)
		}
		r.RSSPerConn = round(float64(r.RSSAfter-r.RSSBefore)/float64(max(1, r.Conns-r.Failed)), 0)
		s.logf("  instance %s: %d connected (%d failed%s) in %.2f s; RSS %.1f -> %.1f MB = %.0f B/conn; %d goroutines",
			in.name, r.Conns-r.Failed, r.Failed, errNote(r.FirstError), r.ConnectS,
			float64(r.RSSBefore)/1e6, float64(r.RSSAfter)/1e6, r.RSSPerConn, r.Goroutines)
	}

	// At rest.
	meters := make([]*cpuMeter, len(pids))
	for i, p := range pids {
		meters[i] = startCPU(withDescendants([]int{p}))
	}
	t0 := time.Now()
	select {
	case <-time.After(s.c.rest):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res.RestS = round(time.Since(t0).Seconds(), 2)
	for i := range pids {
		r := &res.Instances[i]
		cpu := meters[i].used().Seconds()
		r.RestCPUS = round(cpu, 3)
		r.RestCPUPct = round(100*cpu/res.RestS, 2)
		r.RestCPUUsConnS = round(cpu*1e6/res.RestS/float64(max(1, r.Conns-r.Failed)), 3)
		r.RSSRest, _ = procRSS(pids[i])
		r.RSSPerConnRest = round(float64(r.RSSRest-r.RSSBefore)/float64(max(1, r.Conns-r.Failed)), 0)
		for _, p := range withDescendants([]int{pids[i]})[1:] {
			if rss, err := procRSS(p); err == nil {
				r.PluginRSS += rss
			}
		}
		s.logf("  instance %s at rest %.0f s: CPU %.3f s (%.2f%% of a core); RSS %.0f B/conn",
			fr.insts[i].name, res.RestS, cpu, r.RestCPUPct, r.RSSPerConnRest)
	}

	// Numbered broadcasts to everyone, through instance 0's backend API.
	if _, err := callAll(workers, func(*scaleWorkerProc) workerCmd { return workerCmd{Cmd: "reset"} }); err != nil {
		return nil, err
	}
	if err := s.broadcast(ctx, fr, pids, workers, res); err != nil {
		return nil, err
	}

	if churn {
		if err := s.churnRun(ctx, pids, workers, res); err != nil {
			return nil, err
		}
		// The joins took effect: the rooms with a member, as the API sees them.
		if res.ChurnRoomsSeen, err = apiRoomCount(fr.insts[0].url, fr.token); err != nil {
			return nil, fmt.Errorf("rooms after the churn: %w", err)
		}
		s.logf("  rooms with a member after the churn: %d", res.ChurnRoomsSeen)
	}
	return res, nil
}

func (s *scaleRun) broadcast(ctx context.Context, fr *fleetRun, pids []int, workers []*scaleWorkerProc, res *scaleRunResult) error {
	pub := newFleetPublisher(fr.insts, fr.token, 1)
	// The emit answers once the local sockets have it queued: seconds for
	// ~20,000 on a busy machine, more than the fleet publisher's 2 s.
	pub.http.Timeout = 15 * time.Second
	meters := make([]*cpuMeter, len(pids))
	for i, p := range pids {
		meters[i] = startCPU(withDescendants([]int{p}))
	}
	var redis *cpuMeter
	if fr.redis != nil {
		redis = startCPU([]int{fr.redis.Process.Pid})
	}
	t0 := time.Now()
	pubAt := make([]int64, s.c.bcast)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for seq := 0; seq < s.c.bcast; seq++ {
		if seq > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		pubAt[seq] = time.Now().UnixNano()
		body := fmt.Sprintf(`{"event":"msg","args":[{"seq":%d,"t":%d}]}`, seq, pubAt[seq])
		if _, err := pub.post(fr.insts[0], body); err != nil {
			res.PublishErr = fmt.Sprintf("seq %d: %v", seq, err)
			s.logf("  publish %s", res.PublishErr)
			break
		}
		res.Published++
	}
	// Until every connection has every message, 10 s at most.
	want := make([]int64, len(pids))
	for i := range res.Instances {
		want[i] = int64(res.Instances[i].Conns-res.Instances[i].Failed) * int64(res.Published)
	}
	var reps []workerReply
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var err error
		if reps, err = callAll(workers, func(*scaleWorkerProc) workerCmd { return workerCmd{Cmd: "report"} }); err != nil {
			return err
		}
		got := make([]int64, len(pids))
		for k, w := range workers {
			for _, d := range reps[k].Delivered {
				got[w.inst] += d
			}
		}
		if slices.Equal(got, want) || time.Now().After(deadline) {
			break
		}
	}
	res.BcastS = round(time.Since(t0).Seconds(), 2)
	for i := range pids {
		r := &res.Instances[i]
		cpu := meters[i].used().Seconds()
		var last = make([]int64, res.Published)
		var alive int
		for k, w := range workers {
			if w.inst != i {
				continue
			}
			alive += reps[k].Alive
			r.Dups += reps[k].Dups
			for seq, d := range reps[k].Delivered {
				if seq < res.Published {
					r.Delivered += d
					last[seq] = max(last[seq], reps[k].LastNs[seq])
				}
			}
		}
		r.Alive = alive
		r.Lost = max(0, int64(r.Conns-r.Failed)*int64(res.Published)-r.Delivered)
		r.BcastCPUS = round(cpu, 3)
		r.CPUPerDelivUs = perUnit(cpu, uint64(r.Delivered))
		var comp []float64
		for seq, l := range last {
			if l > 0 {
				comp = append(comp, float64(l-pubAt[seq])/1e6)
			}
		}
		slices.Sort(comp)
		if len(comp) > 0 {
			r.CompleteP50Ms = round(comp[len(comp)/2], 1)
			r.CompleteMaxMs = round(comp[len(comp)-1], 1)
		}
		s.logf("  instance %s: %d broadcasts, %d deliveries, %d lost, %d duplicated; CPU %.3f s = %.2f µs/delivery; publish to last delivery p50 %.1f ms, max %.1f ms",
			fr.insts[i].name, res.Published, r.Delivered, r.Lost, r.Dups, cpu, r.CPUPerDelivUs, r.CompleteP50Ms, r.CompleteMaxMs)
	}
	if redis != nil {
		res.RedisCPUS = round(redis.used().Seconds(), 3)
	}
	return nil
}

func (s *scaleRun) churnRun(ctx context.Context, pids []int, workers []*scaleWorkerProc, res *scaleRunResult) error {
	if len(pids) != 1 {
		return errors.New("churn runs on one instance")
	}
	total := 0
	for _, w := range workers {
		total += w.n
	}
	res.ChurnRate = float64(total) / 10 // 10 per second per 100 connections
	m := startCPU(withDescendants(pids))
	t0 := time.Now()
	reps, err := callAll(workers, func(w *scaleWorkerProc) workerCmd {
		return workerCmd{Cmd: "churn", Rate: float64(w.n) / 10, Rooms: s.c.churnRooms, Secs: s.c.churn.Seconds()}
	})
	time.Sleep(500 * time.Millisecond) // the last events' handling
	secs := time.Since(t0).Seconds()
	cpu := m.used().Seconds()
	if err != nil {
		res.ChurnErrors = err.Error()
	}
	for _, r := range reps {
		res.ChurnOps += r.Ops
	}
	restRate := res.Instances[0].RestCPUS / max(res.RestS, 1e-9)
	res.ChurnCPUS = round(cpu, 3)
	res.ChurnUsOp = perUnit(max(0, cpu-restRate*secs), uint64(res.ChurnOps))
	s.logf("  churn: %d joins/leaves in %.1f s (%.0f/s) across %d rooms: CPU %.3f s = %.2f µs per operation beyond rest%s",
		res.ChurnOps, secs, float64(res.ChurnOps)/secs, s.c.churnRooms, cpu, res.ChurnUsOp, errNote(res.ChurnErrors))
	return ctx.Err()
}

// apiRoomCount is the number of rooms GET /api/v1/rooms lists.
func apiRoomCount(base, token string) (int, error) {
	req, _ := http.NewRequest("GET", base+"/api/v1/rooms", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /api/v1/rooms: %s", resp.Status)
	}
	var body struct {
		Rooms []string `json:"rooms"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	return len(body.Rooms), nil
}

// meminfo returns a /proc/meminfo field in bytes (0 when missing).
func meminfo(field string) int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

func sum(v []int) int {
	t := 0
	for _, x := range v {
		t += x
	}
	return t
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.Join(strings.Fields(string(b)), " ")
}

func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if l, _, ok := strings.Cut(string(b), "\n"); ok {
			mem = strings.Join(strings.Fields(strings.TrimPrefix(l, "MemTotal:")), " ")
		}
	}
	return fmt.Sprintf("%s, %d CPUs, %s RAM, Linux %s", model, numCPU(), mem, readTrim("/proc/sys/kernel/osrelease"))
}

// scaleTable is the human report (Markdown).
func scaleTable(res *scaleResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "socketbench scale, %s: %s; descriptors %d per process (%d connections per worker, %d per instance); ports %s\n\n",
		res.Time, res.Machine, res.NoFile, res.PerWorker, res.PerInstance, res.PortRange)
	b.WriteString("| run | instance | connections | failed | connect | RSS/conn after connect | RSS/conn at rest | goroutines | CPU at rest | CPU at rest per conn | CPU per delivery | publish → last delivery p50 / max | lost | dup |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range res.Runs {
		for _, in := range r.Instances {
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %.2f s | %.0f B | %.0f B | %d | %.2f%% | %.3f µs/s | %.2f µs | %.1f / %.1f ms | %d | %d |\n",
				r.Name, in.Instance, in.Conns, in.Failed, in.ConnectS, in.RSSPerConn, in.RSSPerConnRest, in.Goroutines,
				in.RestCPUPct, in.RestCPUUsConnS, in.CPUPerDelivUs, in.CompleteP50Ms, in.CompleteMaxMs, in.Lost, in.Dups)
		}
		if len(r.Instances) > 1 {
			var conns, failed int
			var deliv, lost, dups int64
			var cpu, rssAfter float64
			for _, in := range r.Instances {
				conns += in.Conns
				failed += in.Failed
				deliv += in.Delivered
				lost += in.Lost
				dups += in.Dups
				cpu += in.BcastCPUS
				rssAfter += float64(in.RSSRest - in.RSSBefore)
			}
			fmt.Fprintf(&b, "| %s | all + Redis | %d | %d | | | %.0f B | | | | %.2f µs (Redis %.3f s) | | %d | %d |\n",
				r.Name, conns, failed, rssAfter/float64(max(1, conns-failed)), perUnit(cpu+r.RedisCPUS, uint64(deliv)), r.RedisCPUS, lost, dups)
		}
	}
	for _, r := range res.Runs {
		if r.PublishErr != "" {
			fmt.Fprintf(&b, "\n%s: publishing stopped after %d broadcasts: %s\n", r.Name, r.Published, r.PublishErr)
		}
	}
	b.WriteString("\n| run | kernel slab per connection (both ends) |\n|---|---:|\n")
	for _, r := range res.Runs {
		fmt.Fprintf(&b, "| %s | %.0f B |\n", r.Name, r.SlabPerConn)
	}
	b.WriteString("\n| run | joins/leaves per s | operations | rooms | rooms with a member after | server CPU per operation (beyond rest) |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range res.Runs {
		if r.ChurnOps > 0 {
			fmt.Fprintf(&b, "| %s | %.0f | %d | %d | %d | %.2f µs |\n", r.Name, r.ChurnRate, r.ChurnOps, res.ChurnRooms, r.ChurnRoomsSeen, r.ChurnUsOp)
		}
	}
	b.WriteString("\nCPU is the server's (its plugins included), from /proc; CPU per delivery is the broadcast window's CPU (rest included) over the deliveries. RSS per connection: (RSS − RSS before connecting) / connections, after connecting and after the rest.\n")
	return b.String()
}
