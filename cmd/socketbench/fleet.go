package main

// socketbench fleet: loss across a fleet change, end to end. It starts a
// redis-server, N socket-server instances and (optionally) nginx in front
// of them, connects C clients spread over R rooms that do the client side
// of connection state recovery (fleetclient.go), publishes numbered
// messages through the backend API at M msg/s, changes the fleet during
// the run (a rolling restart, a kill -9, Redis stopped for a few seconds)
// and counts per client what was lost, duplicated or out of order, and how
// many reconnects were recovered. bench/README.md, "Fleet changes".

import (
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
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type fleetConfig struct {
	n, rooms, instances int
	rate                float64
	duration, changeAt  time.Duration
	change              string
	victim              int
	redisStop           time.Duration
	straggle            time.Duration
	server, pluginDir   string
	configPath          string
	redisServer         string
	nginx               string
	noNginx             bool
	out                 string
	expectLossless      bool
	inFlight            int
	nodeModules         string
}

type fleetInst struct {
	idx  int
	name string
	port int
	url  string
	up   atomic.Bool // ready and not being stopped: the publisher's choice

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

type fleetEventLog struct {
	T    float64 `json:"t_s"`
	What string  `json:"what"`
}

type fleetRun struct {
	c         fleetConfig
	dir       string
	log       io.Writer
	token     string
	insts     []*fleetInst
	redis     *exec.Cmd
	redisURL  string
	nginxBin  string
	nginxCmd  *exec.Cmd
	nginxDone chan struct{}
	nginxURL  string
	t0        time.Time

	pub     *fleetPublisher
	clients []*fleetClient

	emu    sync.Mutex
	events []fleetEventLog

	// The reconnect storm of -change kill: when the victim died, and the
	// survivors' CPU (plugins included) sampled from then on.
	smu     sync.Mutex
	stormAt time.Time
	storm   []cpuSample
}

type cpuSample struct {
	at  time.Time
	cpu time.Duration
}

// sampleStorm records the CPU the survivors use from now on, every 50 ms
// for a minute at most.
func (r *fleetRun) sampleStorm(ctx context.Context, victim *fleetInst) {
	var pids []int
	for _, in := range r.insts {
		in.mu.Lock()
		if in != victim && in.cmd != nil && in.cmd.Process != nil {
			pids = append(pids, in.cmd.Process.Pid)
		}
		in.mu.Unlock()
	}
	m := startCPU(withDescendants(pids))
	r.smu.Lock()
	r.stormAt = time.Now()
	r.smu.Unlock()
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		end := time.After(time.Minute)
		for {
			select {
			case <-ctx.Done():
				return
			case <-end:
				return
			case now := <-t.C:
				r.smu.Lock()
				r.storm = append(r.storm, cpuSample{now, m.used()})
				r.smu.Unlock()
			}
		}
	}()
}

// stormResult: how many clients recovered after the kill, how long until
// the last did, and the survivors' CPU until then.
func (r *fleetRun) stormResult() (clients int, allBack time.Duration, cpu time.Duration) {
	r.smu.Lock()
	defer r.smu.Unlock()
	if r.stormAt.IsZero() {
		return 0, 0, 0
	}
	var last time.Time
	for _, fc := range r.clients {
		fc.mu.Lock()
		if fc.lastRecovered.After(r.stormAt) {
			clients++
			if fc.lastRecovered.After(last) {
				last = fc.lastRecovered
			}
		}
		fc.mu.Unlock()
	}
	if clients == 0 {
		return 0, 0, 0
	}
	for _, s := range r.storm {
		cpu = s.cpu
		if !s.at.Before(last) {
			break
		}
	}
	return clients, last.Sub(r.stormAt), cpu
}

func fleetMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c fleetConfig
	fs := flag.NewFlagSet("socketbench fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.n, "n", 300, "clients")
	fs.IntVar(&c.rooms, "rooms", 10, "rooms (client i in room i mod rooms)")
	fs.IntVar(&c.instances, "instances", 3, "socket-server instances")
	fs.Float64Var(&c.rate, "rate", 20, "messages per second, all rooms together (message seq goes to room seq mod rooms)")
	fs.DurationVar(&c.duration, "duration", 40*time.Second, "publishing time (longer when the change is still going on)")
	fs.DurationVar(&c.changeAt, "change-at", 10*time.Second, "when the change begins, after the publisher started")
	fs.StringVar(&c.change, "change", "rolling", "rolling (SIGTERM, wait, restart, ready: each instance in turn), kill (SIGKILL of -victim, restart), redis-stop (SIGSTOP of redis-server for -redis-stop, SIGCONT), nginx-restart (every client connection drops, the instances stay: recovery on the same instance, e.g. -instances 1 -config bench/fleet-single.hcl), none")
	fs.IntVar(&c.victim, "victim", -1, "instance index killed by -change kill (default the last one; the publisher uses the first one that is up)")
	fs.DurationVar(&c.redisStop, "redis-stop", 5*time.Second, "how long -change redis-stop keeps redis-server stopped")
	fs.DurationVar(&c.straggle, "straggle", 15*time.Second, "longest wait, after publishing stops, for every client to receive its room's last message")
	fs.StringVar(&c.server, "server", "bin/socket-server", "socket-server binary")
	fs.StringVar(&c.pluginDir, "plugin-dir", "bin/plugins", "plugin directory")
	fs.StringVar(&c.configPath, "config", "bench/fleet.hcl", "instance configuration (LISTEN_ADDR, INSTANCE_ID, REDIS_URL, API_TOKEN, PLUGIN_DIR from the environment); bench/fleet-classic.hcl for pub/sub without recovery")
	fs.StringVar(&c.redisServer, "redis-server", "redis-server", "redis-server binary")
	fs.StringVar(&c.nginx, "nginx", "", "nginx binary (default: nginx on PATH, else /usr/sbin/nginx)")
	fs.BoolVar(&c.noNginx, "no-nginx", false, "no nginx: clients go round robin over the instances themselves")
	fs.StringVar(&c.out, "out", "", "JSON result file; the logs go next to it (default bench/results/fleet-<UTC time>/fleet.json)")
	fs.BoolVar(&c.expectLossless, "expect-lossless", false, "exit 1 when a delivery was lost or duplicated")
	fs.IntVar(&c.inFlight, "c", 50, "handshakes in flight")
	fs.StringVar(&c.nodeModules, "node", "", "run Node's socket.io as the instances instead (the reference; fleetnode.go), with this node_modules folder (e.g. test/e2e/node_modules)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %v\n", fs.Args())
		return 2
	}
	switch {
	case c.n < 1 || c.rooms < 1 || c.instances < 1 || c.rate <= 0 || c.inFlight < 1:
		fmt.Fprintln(stderr, "-n, -rooms, -instances, -rate and -c must be positive")
		return 2
	case c.change != "rolling" && c.change != "kill" && c.change != "redis-stop" && c.change != "nginx-restart" && c.change != "none":
		fmt.Fprintf(stderr, "-change: rolling, kill, redis-stop, nginx-restart or none, not %q\n", c.change)
		return 2
	case c.change == "nginx-restart" && c.noNginx:
		fmt.Fprintln(stderr, "-change nginx-restart needs nginx")
		return 2
	}
	if c.victim < 0 {
		c.victim = c.instances - 1
	}
	if c.victim >= c.instances {
		fmt.Fprintf(stderr, "-victim %d: there are %d instances\n", c.victim, c.instances)
		return 2
	}
	if c.out == "" {
		c.out = filepath.Join("bench", "results", "fleet-"+time.Now().UTC().Format("2006-01-02T15-04-05"), "fleet.json")
	}
	dir := filepath.Dir(c.out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	logf, err := os.Create(filepath.Join(dir, "fleet.log"))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer logf.Close()
	r := &fleetRun{c: c, dir: dir, log: io.MultiWriter(stderr, logf)}
	res, err := r.run(ctx)
	if err != nil {
		r.logf("fleet: %v", err)
		return 1
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(c.out, append(b, '\n'), 0o644); err != nil {
		r.logf("fleet: %v", err)
		return 1
	}
	fmt.Fprint(r.log, fleetTable(res))
	r.logf("results in %s", c.out)
	line, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "%s\n", line)
	if res.Interrupted {
		return 1
	}
	if c.expectLossless && (res.Total.Lost > 0 || res.Total.Duplicated > 0) {
		r.logf("FAIL (-expect-lossless): %d lost, %d duplicated", res.Total.Lost, res.Total.Duplicated)
		return 1
	}
	return 0
}

func (r *fleetRun) logf(format string, a ...any) {
	fmt.Fprintf(r.log, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.000")}, a...)...)
}

// note records a step of the change (and logs it).
func (r *fleetRun) note(format string, a ...any) {
	what := fmt.Sprintf(format, a...)
	t := 0.0
	if !r.t0.IsZero() {
		t = round(time.Since(r.t0).Seconds(), 2)
	}
	r.emu.Lock()
	r.events = append(r.events, fleetEventLog{T: t, What: what})
	r.emu.Unlock()
	r.logf("t=%.1fs %s", t, what)
}

func (r *fleetRun) startRedis() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(r.dir, "redis.log"))
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
	r.redisURL = fmt.Sprintf("redis://127.0.0.1:%d", port)
	return waitListen("127.0.0.1:"+strconv.Itoa(port), 10*time.Second)
}

func waitListen(addr string, d time.Duration) error {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			cn.Close()
			return nil
		}
	}
	return fmt.Errorf("nothing listens on %s after %s", addr, d)
}

// start launches the instance (again) on its port and waits for /ready.
func (r *fleetRun) start(in *fleetInst) error {
	f, err := os.OpenFile(filepath.Join(r.dir, "server-"+in.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	pluginDir, _ := filepath.Abs(r.c.pluginDir)
	cmd := exec.Command(r.c.server, "run", "--config", r.c.configPath)
	cmd.Env = append(os.Environ(), "LISTEN_ADDR=127.0.0.1:"+strconv.Itoa(in.port), "INSTANCE_ID=fleet-"+in.name,
		"REDIS_URL="+r.redisURL, "API_TOKEN="+r.token, "PLUGIN_DIR="+pluginDir)
	if r.c.nodeModules != "" {
		mods, _ := filepath.Abs(r.c.nodeModules)
		env := append(cmd.Env, "NODE_PATH="+mods)
		cmd = exec.Command("node", filepath.Join(r.dir, "fleet-node.js"), "--config", r.c.configPath)
		cmd.Env = env
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	in.mu.Lock()
	in.cmd, in.done = cmd, done
	in.mu.Unlock()
	if err := waitReady(in.url, done, 30*time.Second); err != nil {
		return fmt.Errorf("instance %s: %w (see %s)", in.name, err, f.Name())
	}
	in.up.Store(true)
	return nil
}

func waitReady(url string, exited <-chan struct{}, d time.Duration) error {
	cl := http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		default:
		}
		resp, err := cl.Get(url + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return fmt.Errorf("not ready within %s", d)
}

// stop signals the instance and waits for it to exit (SIGKILL after
// timeout).
func (r *fleetRun) stop(in *fleetInst, sig syscall.Signal, timeout time.Duration) {
	in.up.Store(false)
	in.mu.Lock()
	cmd, done := in.cmd, in.done
	in.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(timeout):
		r.note("%s did not exit within %s of %s: SIGKILL", in.name, timeout, sig)
		_ = cmd.Process.Kill()
		<-done
	}
}

// findNginx returns the nginx binary to use, or "".
func (r *fleetRun) findNginx() string {
	if r.c.nginx != "" {
		return r.c.nginx
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if st, err := os.Stat("/usr/sbin/nginx"); err == nil && !st.IsDir() {
		return "/usr/sbin/nginx"
	}
	return ""
}

// fleetNginxConf is nginx in front of the instances: round robin,
// WebSocket only, the next instance when one refuses the connection.
func fleetNginxConf(dir string, port int, backends []int, root bool) string {
	var b strings.Builder
	if root {
		b.WriteString("user root;\n")
	}
	fmt.Fprintf(&b, `worker_processes 1;
worker_rlimit_nofile 8192;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/nginx-tmp/body;
  proxy_temp_path %[1]s/nginx-tmp/proxy;
  fastcgi_temp_path %[1]s/nginx-tmp/fastcgi;
  uwsgi_temp_path %[1]s/nginx-tmp/uwsgi;
  scgi_temp_path %[1]s/nginx-tmp/scgi;
  upstream fleet {
`, dir)
	for _, p := range backends {
		fmt.Fprintf(&b, "    server 127.0.0.1:%d max_fails=0;\n", p)
	}
	fmt.Fprintf(&b, `  }
  server {
    listen 127.0.0.1:%d;
    location /socket.io/ {
      if ($http_upgrade != "websocket") { return 400; }
      proxy_pass http://fleet;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
      proxy_connect_timeout 2s;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
      proxy_next_upstream error timeout http_502 http_503;
    }
  }
}
`, port)
	return b.String()
}

// startNginx starts nginx on port (a free one when 0).
func (r *fleetRun) startNginx(bin string, port int) error {
	if port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		port = p
	}
	dir, _ := filepath.Abs(r.dir)
	if err := os.MkdirAll(filepath.Join(dir, "nginx-tmp"), 0o755); err != nil {
		return err
	}
	ports := make([]int, len(r.insts))
	for i, in := range r.insts {
		ports[i] = in.port
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fleetNginxConf(dir, port, ports, os.Getuid() == 0)), 0o644); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "nginx.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "nginx-error.log"), "-c", conf)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	r.nginxBin, r.nginxCmd, r.nginxDone = bin, cmd, done
	r.nginxURL = "http://127.0.0.1:" + strconv.Itoa(port)
	return waitListen("127.0.0.1:"+strconv.Itoa(port), 10*time.Second)
}

// pickURL: nginx when there is one; else the instances in turn.
func (r *fleetRun) pickURL(_, attempt int) string {
	if r.nginxURL != "" {
		return r.nginxURL
	}
	return r.insts[attempt%len(r.insts)].url
}

func (r *fleetRun) joinedAt() int { return int(r.pub.published.Load()) }

func (r *fleetRun) cleanup() {
	for _, in := range r.insts {
		in.mu.Lock()
		cmd, done := in.cmd, in.done
		in.mu.Unlock()
		if cmd != nil && cmd.Process != nil {
			_ = cmd.Process.Signal(syscall.SIGINT)
			_ = cmd.Process.Signal(syscall.SIGINT) // a second signal exits at once
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
			}
		}
	}
	if r.nginxCmd != nil && r.nginxCmd.Process != nil {
		_ = r.nginxCmd.Process.Signal(syscall.SIGTERM)
	}
	if r.redis != nil && r.redis.Process != nil {
		_ = r.redis.Process.Signal(syscall.SIGCONT)
		_ = r.redis.Process.Signal(syscall.SIGTERM)
	}
	time.Sleep(300 * time.Millisecond)
}

func (r *fleetRun) run(ctx context.Context) (*fleetResult, error) {
	c := r.c
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && uint64(c.n)+200 > lim.Cur {
		return nil, fmt.Errorf("descriptor limit %d: too low for %d clients (ulimit -n)", lim.Cur, c.n)
	}
	if _, err := os.Stat(c.configPath); err != nil {
		return nil, err
	}
	var tok [16]byte
	for i := range tok {
		tok[i] = "0123456789abcdef"[rand.IntN(16)]
	}
	r.token = "fleet-" + string(tok[:])
	if c.nodeModules != "" {
		if err := os.WriteFile(filepath.Join(r.dir, "fleet-node.js"), []byte(fleetNodeScript), 0o644); err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(c.nodeModules, "@socket.io", "redis-streams-adapter")); err != nil {
			return nil, fmt.Errorf("-node %s: %w", c.nodeModules, err)
		}
	}
	defer r.cleanup()
	if err := r.startRedis(); err != nil {
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	for i := 0; i < c.instances; i++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		in := &fleetInst{idx: i, name: string(rune('a' + i%26)), port: port, url: "http://127.0.0.1:" + strconv.Itoa(port)}
		if i >= 26 {
			in.name += strconv.Itoa(i / 26)
		}
		r.insts = append(r.insts, in)
		if err := r.start(in); err != nil {
			return nil, err
		}
	}
	if !c.noNginx {
		bin := r.findNginx()
		if bin == "" {
			return nil, errors.New("no nginx on PATH nor /usr/sbin/nginx (apt-get install nginx, or -no-nginx)")
		}
		if err := r.startNginx(bin, 0); err != nil {
			return nil, fmt.Errorf("nginx: %w (see %s)", err, filepath.Join(r.dir, "nginx-error.log"))
		}
	}
	front := "round robin over the instances"
	if r.nginxURL != "" {
		front = "nginx " + r.nginxURL
	}
	if c.nodeModules != "" {
		front += "; Node socket.io instances (-node)"
	}
	r.logf("fleet: %d instances (%s), redis %s, config %s, %s; %d clients in %d rooms, %.0f msg/s for %s, change %s at %s",
		c.instances, strings.Join(r.instURLs(), " "), r.redisURL, c.configPath, front, c.n, c.rooms, c.rate, c.duration, c.change, c.changeAt)

	r.pub = newFleetPublisher(r.insts, r.token, c.rooms)
	clientsCtx, stopClients := context.WithCancel(ctx)
	defer stopClients()
	sem := make(chan struct{}, c.inFlight)
	var wg sync.WaitGroup
	for i := 0; i < c.n; i++ {
		fc := &fleetClient{id: i, room: i % c.rooms, led: newFleetLedger(), first: -1}
		r.clients = append(r.clients, fc)
		wg.Add(1)
		go func() { defer wg.Done(); fc.run(clientsCtx, r, sem) }()
	}
	// Every client joined (or 30 s).
	joinedBy := time.Now().Add(30 * time.Second)
	for time.Now().Before(joinedBy) && ctx.Err() == nil && r.joinedCount() < c.n {
		time.Sleep(50 * time.Millisecond)
	}
	r.logf("%d of %d clients joined", r.joinedCount(), c.n)

	r.t0 = time.Now()
	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); r.pub.run(pubCtx, c.rate, r.t0) }()
	changeDone := make(chan struct{})
	go func() { defer close(changeDone); r.runChange(ctx) }()
	select {
	case <-time.After(c.duration):
	case <-ctx.Done():
	}
	select {
	case <-changeDone:
	default:
		r.note("publishing goes on until the change is over")
		<-changeDone
	}
	stopPub()
	<-pubDone
	pubEnd := time.Since(r.t0)
	r.note("publishing stopped: %d messages, %d not sent", r.pub.count(pubOK), r.pub.count(pubFailed))

	// Stragglers: every joined client has its room's last message, or the
	// wait is over.
	sent := r.pub.outcomes()
	deadline := time.Now().Add(c.straggle)
	waiting := r.waitingClients(sent)
	for waiting > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		waiting = r.waitingClients(sent)
	}
	if waiting > 0 {
		r.logf("%d clients still without their room's last message after %s", waiting, c.straggle)
	}
	time.Sleep(time.Second) // late duplicates
	stopClients()
	wg.Wait()
	res := r.result(sent, pubEnd)
	res.StragglersLeft = waiting
	if ctx.Err() != nil {
		// SIGINT or SIGTERM (ours, or someone's pkill): the counts are
		// not those of the run asked for.
		res.Interrupted = true
		r.logf("INTERRUPTED by a signal: the run was cut short; its counts do not measure the change")
	}
	return res, nil
}

func (r *fleetRun) instURLs() []string {
	var s []string
	for _, in := range r.insts {
		s = append(s, in.name+"="+in.url)
	}
	return s
}

func (r *fleetRun) joinedCount() int {
	n := 0
	for _, fc := range r.clients {
		fc.mu.Lock()
		if fc.first >= 0 {
			n++
		}
		fc.mu.Unlock()
	}
	return n
}

// waitingClients counts the joined clients that have not received their
// room's last confirmed message.
func (r *fleetRun) waitingClients(sent []int8) int {
	n := 0
	for _, fc := range r.clients {
		fc.mu.Lock()
		if last := fleetLastExpected(fc.first, fc.room, r.c.rooms, sent); last >= 0 && !fc.led.has(last) {
			n++
		}
		fc.mu.Unlock()
	}
	return n
}

// runChange waits for -change-at and changes the fleet.
func (r *fleetRun) runChange(ctx context.Context) {
	if r.c.change == "none" {
		return
	}
	select {
	case <-time.After(r.c.changeAt):
	case <-ctx.Done():
		return
	}
	switch r.c.change {
	case "rolling":
		r.note("rolling restart begins")
		for _, in := range r.insts {
			if ctx.Err() != nil {
				return
			}
			r.note("SIGTERM %s", in.name)
			t := time.Now()
			r.stop(in, syscall.SIGTERM, 60*time.Second)
			r.note("%s exited after %.1fs; restarting", in.name, time.Since(t).Seconds())
			if err := r.start(in); err != nil {
				r.note("restart of %s failed: %v", in.name, err)
				continue
			}
			r.note("%s ready", in.name)
		}
		r.note("rolling restart done")
	case "kill":
		in := r.insts[r.c.victim]
		r.sampleStorm(ctx, in)
		r.note("SIGKILL %s", in.name)
		r.stop(in, syscall.SIGKILL, 10*time.Second)
		if err := r.start(in); err != nil {
			r.note("restart of %s failed: %v", in.name, err)
			return
		}
		r.note("%s ready", in.name)
	case "nginx-restart":
		r.note("SIGTERM nginx")
		_ = r.nginxCmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.nginxDone:
		case <-time.After(10 * time.Second):
			_ = r.nginxCmd.Process.Kill()
			<-r.nginxDone
		}
		port, _ := strconv.Atoi(r.nginxURL[strings.LastIndexByte(r.nginxURL, ':')+1:])
		if err := r.startNginx(r.nginxBin, port); err != nil {
			r.note("nginx restart failed: %v", err)
			return
		}
		r.note("nginx listening again")
	case "redis-stop":
		r.note("SIGSTOP redis-server for %s", r.c.redisStop)
		_ = r.redis.Process.Signal(syscall.SIGSTOP)
		select {
		case <-time.After(r.c.redisStop):
		case <-ctx.Done():
		}
		_ = r.redis.Process.Signal(syscall.SIGCONT)
		r.note("SIGCONT redis-server")
		for _, in := range r.insts {
			in.mu.Lock()
			done := in.done
			in.mu.Unlock()
			if err := waitReady(in.url, done, 30*time.Second); err != nil {
				r.note("%s after SIGCONT: %v", in.name, err)
			}
		}
		r.note("every instance ready")
	}
}

// fleetPublisher posts numbered messages to the backend API, one at a
// time (so that they leave in order), on the first instance that is up;
// it moves on to the next one when a connection is refused or the API
// answers other than 202.
type fleetPublisher struct {
	insts []*fleetInst
	token string
	rooms int
	http  *http.Client

	published atomic.Int64 // seq+1 of the last message whose publish began

	mu       sync.Mutex
	sent     []int8
	at       []float64 // seconds after t0 when each publish began
	cur      int
	switches int
	retries  int
	firstErr string
}

func newFleetPublisher(insts []*fleetInst, token string, rooms int) *fleetPublisher {
	return &fleetPublisher{insts: insts, token: token, rooms: rooms, http: &http.Client{
		Timeout: 2 * time.Second,
		// A new connection per message: a refused connection is then
		// surely a message not sent (a reused one could fail after the
		// request was written).
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}}
}

func (p *fleetPublisher) run(ctx context.Context, rate float64, t0 time.Time) {
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		p.sent = append(p.sent, pubPending)
		p.at = append(p.at, time.Since(t0).Seconds())
		p.mu.Unlock()
		p.published.Store(int64(seq + 1))
		res := p.publish(seq)
		p.mu.Lock()
		p.sent[seq] = res
		p.mu.Unlock()
	}
}

// publish posts message seq: pubOK, or pubFailed when no instance took it
// (or the outcome is unknown: a timeout after the request was written).
func (p *fleetPublisher) publish(seq int) int8 {
	room := fleetRoomName(fleetRoomOf(seq, p.rooms))
	body := fmt.Sprintf(`{"rooms":[%s],"event":"msg","args":[{"room":%s,"seq":%d}]}`, quote(room), quote(room), seq)
	deadline := time.Now().Add(3 * time.Second)
	for try := 0; time.Now().Before(deadline); try++ {
		p.mu.Lock()
		cur := p.cur
		p.mu.Unlock()
		// The current instance, or the next one that is up.
		in := p.insts[cur]
		if !in.up.Load() {
			for i := 1; i <= len(p.insts); i++ {
				if cand := p.insts[(cur+i)%len(p.insts)]; cand.up.Load() {
					in = cand
					break
				}
			}
		}
		if try > 0 {
			p.mu.Lock()
			p.retries++
			p.mu.Unlock()
		}
		retry, err := p.post(in, body)
		if err == nil {
			p.mu.Lock()
			if in.idx != p.cur {
				p.cur = in.idx
				p.switches++
			}
			p.mu.Unlock()
			return pubOK
		}
		p.noteErr(fmt.Sprintf("seq %d via %s: %v", seq, in.name, err))
		if !retry {
			return pubFailed
		}
		// Next time, the next instance.
		p.mu.Lock()
		p.cur = (in.idx + 1) % len(p.insts)
		p.switches++
		p.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	return pubFailed
}

// post sends one emit; retry says the message surely did not leave.
func (p *fleetPublisher) post(in *fleetInst, body string) (retry bool, err error) {
	req, _ := http.NewRequest("POST", in.url+"/api/v1/emit", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		var op *net.OpError
		return errors.As(err, &op) && op.Op == "dial", err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return true, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return false, nil
}

func (p *fleetPublisher) noteErr(e string) {
	p.mu.Lock()
	if p.firstErr == "" {
		p.firstErr = e
	}
	p.mu.Unlock()
}

func (p *fleetPublisher) outcomes() []int8 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int8(nil), p.sent...)
}

func (p *fleetPublisher) count(v int8) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.sent {
		if s == v {
			n++
		}
	}
	return n
}

// fleetRoomRow is one room's line of the table (clients summed).
type fleetRoomRow struct {
	Room string `json:"room"`
	fleetTally
	Clients    int `json:"clients"`
	Losing     int `json:"clients_losing"`
	Reconnects int `json:"reconnects"`
	Recovered  int `json:"recovered"`
}

type fleetLostMsg struct {
	Seq     int     `json:"seq"`
	Room    string  `json:"room"`
	T       float64 `json:"t_s"` // when its publish began, after the publisher started
	Clients int     `json:"clients"`
}

type fleetResult struct {
	Scenario        string          `json:"scenario"`
	Time            string          `json:"time"`
	Config          string          `json:"config"`
	Server          string          `json:"server"` // "socketfleet" or "node"
	Change          string          `json:"change"`
	Instances       int             `json:"instances"`
	Nginx           bool            `json:"nginx"`
	Clients         int             `json:"clients"`
	Rooms           int             `json:"rooms"`
	Rate            float64         `json:"rate_per_s"`
	PublishS        float64         `json:"publish_s"`
	Published       int             `json:"published"`
	NotSent         int             `json:"not_sent"`
	PubSwitches     int             `json:"publisher_switches"`
	PubRetries      int             `json:"publisher_retries"`
	PubFirstErr     string          `json:"publisher_first_error"`
	Total           fleetTally      `json:"total"`
	ClientsLosing   int             `json:"clients_losing"`
	NeverJoined     int             `json:"never_joined"`
	Sessions        int             `json:"sessions"`
	Reconnects      int             `json:"reconnects"`
	Recovered       int             `json:"recovered"`
	RecoveredSIDNew int             `json:"recovered_with_new_sid"`
	Rejoins         int             `json:"rejoins"`
	ConnectFailures int             `json:"connect_failures"`
	ClientFirstErr  string          `json:"client_first_error"`
	StragglersLeft  int             `json:"stragglers_left"`
	DistinctLost    int             `json:"distinct_messages_lost"`
	LostMessages    []fleetLostMsg  `json:"lost_messages"` // the first 200 by seq
	DistinctDup     int             `json:"distinct_messages_duplicated"`
	DupMessages     []fleetLostMsg  `json:"duplicated_messages"` // the first 200 by seq; clients = duplicate arrivals
	Replayed        int             `json:"replayed_before_connect_reply"`
	DupInReplay     int             `json:"duplicated_in_replay"`             // duplicates whose second copy was replayed (the rest came live)
	StaleReplay     int             `json:"replayed_not_after_client_offset"` // replayed packets at or before the offset the client reconnected with
	NoOffset        int             `json:"msg_events_without_offset"`        // while the session had a pid
	PerRoom         []fleetRoomRow  `json:"per_room"`
	Events          []fleetEventLog `json:"events"`
	Lossless        bool            `json:"lossless"`
	Interrupted     bool            `json:"interrupted"` // a signal cut the run short
	// -change kill: the reconnect storm. Clients that recovered after the
	// kill, time from the kill to the last recovery, and the CPU the
	// surviving instances (plugins included) spent meanwhile.
	StormRecovered int     `json:"storm_recovered,omitempty"`
	StormAllBackMS float64 `json:"storm_all_back_ms,omitempty"`
	StormCPUS      float64 `json:"storm_cpu_s,omitempty"`
}

func (r *fleetRun) result(sent []int8, pubEnd time.Duration) *fleetResult {
	res := &fleetResult{
		Scenario: "fleet", Time: time.Now().UTC().Format(time.RFC3339), Config: r.c.configPath, Change: r.c.change, Server: "socketfleet",
		Instances: r.c.instances, Nginx: r.nginxURL != "", Clients: r.c.n, Rooms: r.c.rooms, Rate: r.c.rate,
		PublishS: round(pubEnd.Seconds(), 2),
	}
	r.pub.mu.Lock()
	at := r.pub.at
	res.PubSwitches, res.PubRetries, res.PubFirstErr = r.pub.switches, r.pub.retries, r.pub.firstErr
	r.pub.mu.Unlock()
	for _, s := range sent {
		switch s {
		case pubOK:
			res.Published++
		case pubFailed:
			res.NotSent++
		}
	}
	rows := make([]fleetRoomRow, r.c.rooms)
	for i := range rows {
		rows[i].Room = fleetRoomName(i)
	}
	lostBy, dupBy := map[int]int{}, map[int]int{}
	for _, fc := range r.clients {
		fc.mu.Lock()
		for _, s := range fc.led.dupSeqs {
			dupBy[s]++
		}
		res.Replayed += fc.replayed
		res.DupInReplay += fc.dupReplay
		res.StaleReplay += fc.staleReplay
		res.NoOffset += fc.noOffset
		t := tallyFleetClient(fc.led, fc.first, fc.room, r.c.rooms, sent, func(seq int) { lostBy[seq]++ })
		row := &rows[fc.room]
		row.fleetTally.add(t)
		row.Clients++
		if t.Lost > 0 {
			row.Losing++
			res.ClientsLosing++
		}
		row.Reconnects += fc.reconnects
		row.Recovered += fc.recovered
		if fc.first < 0 {
			res.NeverJoined++
		}
		res.Sessions += fc.sessions
		res.Reconnects += fc.reconnects
		res.Recovered += fc.recovered
		res.RecoveredSIDNew += fc.sidChanged
		res.Rejoins += max(fc.joins-1, 0)
		res.ConnectFailures += fc.connFails
		if res.ClientFirstErr == "" {
			res.ClientFirstErr = fc.firstErr
		}
		fc.mu.Unlock()
		res.Total.add(t)
	}
	res.PerRoom = rows
	if r.c.nodeModules != "" {
		res.Server = "node"
	}
	res.DistinctLost, res.DistinctDup = len(lostBy), len(dupBy)
	res.LostMessages = fleetMsgList(lostBy, at, r.c.rooms)
	res.DupMessages = fleetMsgList(dupBy, at, r.c.rooms)
	r.emu.Lock()
	res.Events = append([]fleetEventLog(nil), r.events...)
	r.emu.Unlock()
	res.Lossless = res.Total.Lost == 0 && res.Total.Duplicated == 0
	if n, back, cpu := r.stormResult(); n > 0 {
		res.StormRecovered, res.StormAllBackMS, res.StormCPUS = n, float64(back.Microseconds())/1000, cpu.Seconds()
	}
	return res
}

// fleetMsgList lists the first 200 seqs of by (seq → clients), with their
// room and when their publish began.
func fleetMsgList(by map[int]int, at []float64, rooms int) []fleetLostMsg {
	seqs := make([]int, 0, len(by))
	for s := range by {
		seqs = append(seqs, s)
	}
	sort.Ints(seqs)
	var out []fleetLostMsg
	for _, s := range seqs[:min(len(seqs), 200)] {
		m := fleetLostMsg{Seq: s, Room: fleetRoomName(fleetRoomOf(s, rooms)), Clients: by[s]}
		if s < len(at) {
			m.T = round(at[s], 2)
		}
		out = append(out, m)
	}
	return out
}

// fleetTable is the human report.
func fleetTable(res *fleetResult) string {
	var b strings.Builder
	front := "no nginx"
	if res.Nginx {
		front = "nginx"
	}
	fmt.Fprintf(&b, "\nfleet (%s): change %s, %d instances (%s), config %s; %d clients, %d rooms, %.0f msg/s for %.1f s\n",
		res.Server, res.Change, res.Instances, front, res.Config, res.Clients, res.Rooms, res.Rate, res.PublishS)
	for _, e := range res.Events {
		fmt.Fprintf(&b, "  t=%6.2fs  %s\n", e.T, e.What)
	}
	fmt.Fprintf(&b, "\n%-6s %7s %9s %7s %6s %6s %6s %10s %9s %7s\n", "room", "clients", "expected", "lost", "dup", "ooo", "unexp", "reconnects", "recovered", "losing")
	line := func(name string, clients int, t fleetTally, rec, recov, losing int) {
		fmt.Fprintf(&b, "%-6s %7d %9d %7d %6d %6d %6d %10d %9d %7d\n", name, clients, t.Expected, t.Lost, t.Duplicated, t.OutOfOrder, t.Unexpected, rec, recov, losing)
	}
	for _, r := range res.PerRoom {
		line(r.Room, r.Clients, r.fleetTally, r.Reconnects, r.Recovered, r.Losing)
	}
	line("total", res.Clients, res.Total, res.Reconnects, res.Recovered, res.ClientsLosing)
	fmt.Fprintf(&b, "\npublished %d (not sent %d; publisher switched instance %d times); distinct messages lost %d, duplicated %d (%d duplicate arrivals in a replay); replayed before a CONNECT reply %d (%d of them not after the client's offset); msg events without an offset %d; rejoins %d; connect failures %d; never joined %d; recovered with a new sid %d\n",
		res.Published, res.NotSent, res.PubSwitches, res.DistinctLost, res.DistinctDup, res.DupInReplay, res.Replayed, res.StaleReplay, res.NoOffset, res.Rejoins, res.ConnectFailures, res.NeverJoined, res.RecoveredSIDNew)
	verdict := "LOSSLESS"
	if !res.Lossless {
		verdict = fmt.Sprintf("NOT LOSSLESS: %d lost, %d duplicated", res.Total.Lost, res.Total.Duplicated)
	}
	if res.Interrupted {
		verdict = "INTERRUPTED (a signal cut the run short; not a measurement); " + verdict
	}
	fmt.Fprintf(&b, "%s; %d out of order; %d of %d reconnects recovered\n", verdict, res.Total.OutOfOrder, res.Recovered, res.Reconnects)
	if res.StormRecovered > 0 {
		fmt.Fprintf(&b, "reconnect storm: %d clients recovered after the kill, the last %.0f ms after it; the surviving instances spent %.2f CPU-s meanwhile\n",
			res.StormRecovered, res.StormAllBackMS, res.StormCPUS)
	}
	return b.String()
}
