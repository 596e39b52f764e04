// Command socketbench is a Socket.IO load generator (Engine.IO v4 /
// Socket.IO v5, WebSocket or polling) for socketfleet and any other
// Socket.IO server that implements the benchmark contract of
// bench/socketfleet.hcl: "join" joins room args[0] (acked), "publish"
// broadcasts its arguments to room args[0].room.
//
//	socketbench connect   -n 10000 -c 200 --server-pid PID
//	socketbench fanout    -n 1000 --rate 30 --duration 15s --server-pid PID
//	socketbench cluster   --url http://127.0.0.1:8081,http://127.0.0.1:8082 -n 1000 --rate 30
//	socketbench handshake -c 200 --duration 10s --jwt-secret s3cr3t
//	socketbench scale     -sizes 2000,10000,max -fleet 55000 -instances 3
//	socketbench table     bench/results/2026-01-01T12-00/*.jsonl
//
// Each run prints a human summary on stderr and one JSON line on stdout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `usage: socketbench SCENARIO [flags]

scenarios:
  connect    N clients connect (C in flight) and stay: connects/s, failures,
             server RSS per connection (--server-pid)
  fanout     N subscribers join a room, P publishers send at --rate msg/s
             (0 = as fast as the subscribers take them): deliveries/s,
             latency, lost and duplicated messages, server CPU per delivery
  cluster    fanout with the subscribers spread over several --url (the
             publishers on the first): local and remote latency
  handshake  C workers connect and disconnect for --duration: handshakes/s,
             optionally with an HS256 JWT in the CONNECT auth {token}
  soak       two instances + Redis started here, churn, numbered broadcasts,
             hostile clients and faults for --minutes; a CSV, an SVG and a
             verdict in bench/results/soak-<time>/ (socketbench soak -h)
  fleet      redis-server, N instances and nginx started here; C clients
             doing connection state recovery in R rooms, numbered messages
             through the backend API, and a fleet change (-change rolling,
             kill, redis-stop): lost, duplicated, out of order, reconnects
             recovered (socketbench fleet -h)
  scale      idle connections up to the descriptor limit on one instance,
             and on N instances on one Redis: RSS per connection, CPU at
             rest, numbered broadcasts to all, room churn; worker processes
             from several loopback addresses (socketbench scale -h)
  table      medians of JSON result lines, ours vs node (see bench/README.md)

Output: a human summary on stderr, one JSON line on stdout.

flags:
`

func main() {
	if len(os.Args) < 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprint(os.Stderr, usage)
		newFlags(&config{}).PrintDefaults()
		os.Exit(2)
	}
	// The generator's heap is small and its garbage little; a lazier GC
	// keeps its CPU for the sockets (GOGC in the environment wins).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	scenario, args := os.Args[1], os.Args[2:]
	if scenario == "table" {
		os.Exit(tableMain(args, os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if scenario == "soak" {
		os.Exit(soakMain(ctx, args, os.Stdout, os.Stderr))
	}
	if scenario == "scale" {
		os.Exit(scaleMain(ctx, args, os.Stdout, os.Stderr))
	}
	if scenario == "scale-worker" {
		os.Exit(scaleWorkerMain(ctx, os.Stdin, os.Stdout))
	}
	if scenario == "fleet" {
		os.Exit(fleetMain(ctx, args, os.Stdout, os.Stderr))
	}
	os.Exit(run(ctx, scenario, args, os.Stdout, os.Stderr))
}

// config holds every flag; each scenario uses its own subset.
type config struct {
	urls       listFlag
	path       string
	transport  string
	n          int
	inFlight   int
	publishers int
	rate       float64
	duration   time.Duration
	warmup     time.Duration
	drain      time.Duration
	hold       time.Duration
	timeout    time.Duration
	size       int
	room       string
	window     int
	jwtSecret  string
	jwtAud     string
	serverPIDs intListFlag
	redisPIDs  intListFlag
	label      string
	name       string
	cpuProfile string
	tlsCA      string
	local      net.IP // source address of the connections (socketbench scale's workers)
}

func newFlags(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("socketbench", flag.ContinueOnError)
	fs.Var(&c.urls, "url", "server base URL(s), comma-separated or repeated (default http://127.0.0.1:8081)")
	fs.StringVar(&c.path, "path", "/socket.io/", "Socket.IO endpoint path")
	fs.StringVar(&c.transport, "transport", "websocket", "websocket or polling")
	fs.IntVar(&c.n, "n", 100, "clients (connect) or subscribers (fanout, cluster)")
	fs.IntVar(&c.inFlight, "c", 200, "handshakes in flight (connect, handshake; also while subscribers connect)")
	fs.IntVar(&c.publishers, "publishers", 1, "publishers (fanout, cluster)")
	fs.Float64Var(&c.rate, "rate", 30, "messages per second, all publishers together; 0 = as fast as delivered (--window)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time (fanout, cluster, handshake)")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "publishing or handshaking before the measured time")
	fs.DurationVar(&c.drain, "drain", 5*time.Second, "longest wait for messages still on their way after publishing stops")
	fs.DurationVar(&c.hold, "hold", 5*time.Second, "connect: how long the clients stay connected before RSS is read")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "one handshake (and join) must finish within this")
	fs.IntVar(&c.size, "size", 128, "bytes of one published Engine.IO packet (padded)")
	fs.StringVar(&c.room, "room", "bench", "room the subscribers join")
	fs.IntVar(&c.window, "window", 32, "with --rate 0: messages per publisher on their way to every subscriber at most")
	fs.StringVar(&c.jwtSecret, "jwt-secret", "", "sign an HS256 JWT (sub, aud, exp) with this secret and send it as CONNECT auth {token}")
	fs.StringVar(&c.jwtAud, "jwt-aud", "bench", "the JWT's aud claim")
	fs.Var(&c.serverPIDs, "server-pid", "server process id(s): CPU time and RSS (connect), child processes (e.g. plugins) included")
	fs.Var(&c.redisPIDs, "redis-pid", "Redis process id(s): CPU time reported apart (cluster)")
	fs.StringVar(&c.label, "label", "", "which server this is (e.g. ours, node); copied to the JSON")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM file of the CA to trust for an https:// --url (WebSocket over TLS: wss://)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write the generator's CPU profile to this file")
	fs.StringVar(&c.name, "name", "", "name of the figure (e.g. fanout-1k); copied to the JSON; default the scenario")
	return fs
}

func run(ctx context.Context, scenario string, args []string, stdout, stderr io.Writer) int {
	var c config
	fs := newFlags(&c)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if len(c.urls) == 0 {
		c.urls = listFlag{"http://127.0.0.1:8081"}
	}
	for i, u := range c.urls {
		c.urls[i] = strings.TrimRight(u, "/")
	}
	if c.name == "" {
		c.name = scenario
	}
	if err := trustCA(c.tlsCA); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if c.transport != "websocket" && c.transport != "polling" {
		fmt.Fprintf(stderr, "--transport: websocket or polling, not %q\n", c.transport)
		return 2
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	var (
		res     any
		summary string
		err     error
	)
	switch scenario {
	case "connect":
		res, summary, err = runConnect(ctx, &c)
	case "fanout":
		if len(c.urls) > 1 {
			err = errors.New("fanout takes one --url; cluster takes several")
			break
		}
		res, summary, err = runFanout(ctx, &c, false)
	case "cluster":
		if len(c.urls) < 2 {
			err = errors.New("cluster needs two --url or more")
			break
		}
		res, summary, err = runFanout(ctx, &c, true)
	case "handshake":
		res, summary, err = runHandshake(ctx, &c)
	default:
		fmt.Fprintf(stderr, "unknown scenario %q\n%s", scenario, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "socketbench %s: %v\n", scenario, err)
		return 1
	}
	fmt.Fprint(stderr, summary)
	line, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "%s\n", line)
	return 0
}

// common are the fields of every JSON result line.
type common struct {
	Scenario  string   `json:"scenario"`
	Name      string   `json:"name"`
	Label     string   `json:"label"`
	Transport string   `json:"transport"`
	URLs      []string `json:"urls"`
	Time      string   `json:"time"`
	// Measured window, seconds.
	WindowS float64 `json:"window_s"`
	// Server processes (with descendants) and their CPU time in the window.
	ServerPIDs   []int   `json:"server_pids"`
	ServerCPUS   float64 `json:"server_cpu_s"`
	ServerCPUPct float64 `json:"server_cpu_pct"` // of one core
	RedisCPUS    float64 `json:"redis_cpu_s"`
	// Time the server's threads waited for a CPU in the window (others
	// on its core): a starved server's latency is the machine's.
	ServerRunqWaitS float64 `json:"server_runq_wait_s"`
	// The generator's own CPU time in the window.
	GenCPUS   float64 `json:"gen_cpu_s"`
	GenCPUPct float64 `json:"gen_cpu_pct"` // of one core
	// Failures: count and the first error.
	FirstError string `json:"first_error"`
}

func newCommon(scenario string, c *config) common {
	return common{
		Scenario: scenario, Name: c.name, Label: c.label, Transport: c.transport,
		URLs: c.urls, Time: time.Now().UTC().Format(time.RFC3339),
	}
}

// meters measures a window: server, Redis and generator CPU.
type meters struct {
	t0     time.Time
	server *cpuMeter
	redis  *cpuMeter
	gen0   time.Duration
	wait0  time.Duration // the server's run-queue wait at t0
}

func startMeters(c *config) *meters {
	return &meters{
		t0:     time.Now(),
		server: startCPU(withDescendants(c.serverPIDs)),
		redis:  startCPU(c.redisPIDs),
		gen0:   selfCPU(),
		wait0:  runqWait(withDescendants(c.serverPIDs)),
	}
}

// stop fills the window fields of r.
func (m *meters) stop(r *common) {
	w := time.Since(m.t0).Seconds()
	r.WindowS = round(w, 3)
	for p := range m.server.start {
		r.ServerPIDs = append(r.ServerPIDs, p)
	}
	srv := m.server.used().Seconds()
	var pids []int
	for p := range m.server.start {
		pids = append(pids, p)
	}
	if w := runqWait(pids) - m.wait0; w > 0 {
		r.ServerRunqWaitS = round(w.Seconds(), 3)
	}
	gen := (selfCPU() - m.gen0).Seconds()
	r.ServerCPUS = round(srv, 3)
	r.RedisCPUS = round(m.redis.used().Seconds(), 3)
	r.GenCPUS = round(gen, 3)
	if w > 0 {
		r.ServerCPUPct = round(100*srv/w, 1)
		r.GenCPUPct = round(100*gen/w, 1)
	}
}

func round(v float64, digits int) float64 {
	s := strconv.FormatFloat(v, 'f', digits, 64)
	r, _ := strconv.ParseFloat(s, 64)
	return r
}

// perUnit is seconds/n in µs, 0 when n is 0.
func perUnit(seconds float64, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return round(seconds*1e6/float64(n), 2)
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

type intListFlag []int

func (l *intListFlag) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}
func (l *intListFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("not a pid: %q", v)
		}
		*l = append(*l, n)
	}
	return nil
}
