package server

// Memory per idle WebSocket connection (docs/architecture.md, "Performance budgets": 8 KB/conn,
// at most one goroutine per idle connection; on Linux there is none, the
// socket waits in the engine's poller).
//
// The real binary is built (go build ./cmd/socket-server) and run as a
// subprocess with a minimal config; this process opens the clients, so
// their memory does not count. The server's VmRSS and /health (goroutines,
// heap) are read before and after opening the idle connections.
//
//	SF_MEMTEST=1 go test -run TestIdleWebSocketMemory -v ./core/server
//	go test -run '^$' -bench IdleWebSocketMemory -benchtime 1x ./core/server
//
// Environment:
//
//	SF_MEMTEST=1          enables the Test (it is heavy)
//	SF_MEMTEST_CONNS=N    idle connections (default 10000)
//	SF_MEMTEST_BIN=path   use this server binary instead of building one
//	SF_MEMTEST_HOLD=30s   keep everything open this long after measuring
//	                      (to look at the server with other tools)

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

const (
	memBudgetPerConn = 8 * 1024 // bytes of server RSS per idle connection
	memWarmConns     = 20       // opened before the baseline and kept open
)

// memResult is one measurement.
type memResult struct {
	Conns           int
	RSSBefore       uint64
	RSSAfter        uint64
	HeapBefore      uint64
	HeapAfter       uint64
	SysBefore       uint64
	SysAfter        uint64
	GoroutinesBefor int
	GoroutinesAfter int
	Connect         time.Duration
}

func (r memResult) rssPerConn() float64 {
	return (float64(r.RSSAfter) - float64(r.RSSBefore)) / float64(r.Conns)
}
func (r memResult) heapPerConn() float64 {
	return (float64(r.HeapAfter) - float64(r.HeapBefore)) / float64(r.Conns)
}
func (r memResult) sysPerConn() float64 {
	return (float64(r.SysAfter) - float64(r.SysBefore)) / float64(r.Conns)
}
func (r memResult) goroutinesPerConn() float64 {
	return float64(r.GoroutinesAfter-r.GoroutinesBefor) / float64(r.Conns)
}

func (r memResult) String() string {
	return fmt.Sprintf("%d idle conns (connected in %v): RSS %.1f -> %.1f MiB = %.0f B/conn; "+
		"Go heap %.1f -> %.1f MiB = %.0f B/conn; Go sys %.0f B/conn; goroutines %d -> %d = %.2f/conn",
		r.Conns, r.Connect.Round(time.Millisecond), float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20), r.rssPerConn(),
		float64(r.HeapBefore)/(1<<20), float64(r.HeapAfter)/(1<<20), r.heapPerConn(), r.sysPerConn(),
		r.GoroutinesBefor, r.GoroutinesAfter, r.goroutinesPerConn())
}

func memConns() int {
	if v, err := strconv.Atoi(os.Getenv("SF_MEMTEST_CONNS")); err == nil && v > 0 {
		return v
	}
	return 10000
}

func memRaiseNoFile() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

// memServerBinary builds cmd/socket-server (or returns SF_MEMTEST_BIN).
func memServerBinary(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("SF_MEMTEST_BIN"); bin != "" {
		return bin
	}
	return testkit.Build(tb, "./cmd/socket-server")
}

// memServer is the server subprocess.
type memServer struct {
	proc   *testkit.Process
	addr   string
	stderr *testkit.Buffer // the first 64 KiB of its output
}

func startMemServer(tb testing.TB, bin, dir string) *memServer {
	tb.Helper()
	addr := testkit.FreeAddr(tb)
	cfg := fmt.Sprintf(`server {
  listen                 = %q
  ping_interval          = "25s"
  log_level              = "warn"
  memory_report_interval = "0s"
}
namespace "/" {}
`, addr)
	path := filepath.Join(dir, "memtest.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	s := &memServer{addr: addr, stderr: &testkit.Buffer{Max: 64 << 10}}
	cmd := testkit.Command(bin, []string{"LOG_LEVEL=warn"}, "run", "--config", path)
	cmd.Stdout, cmd.Stderr = s.stderr, s.stderr
	s.proc = testkit.Start(tb, cmd)
	tb.Cleanup(s.proc.Kill) // no drain of thousands of connections
	if !testkit.Poll(20*time.Second, func() bool { _, err := s.health(); return err == nil }) {
		tb.Fatalf("server did not come up on %s; stderr:\n%s", addr, s.stderr)
	}
	return s
}

type memHealth struct {
	Connections int64  `json:"connections"`
	Sockets     int64  `json:"sockets"`
	Goroutines  int    `json:"goroutines"`
	HeapAlloc   uint64 `json:"heap_alloc_bytes"`
	Sys         uint64 `json:"sys_bytes"`
}

func (s *memServer) health() (memHealth, error) {
	var h memHealth
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + s.addr + "/health")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("/health: %s", resp.Status)
	}
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// rss returns the server's VmRSS in bytes.
func (s *memServer) rss(tb testing.TB) uint64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.proc.PID()) + "/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb * 1024
		}
	}
	tb.Fatal("no VmRSS in /proc/pid/status")
	return 0
}

// settle waits for the server to quiesce and returns the lowest RSS and
// /health seen over a few samples (the GC runs in between).
func (s *memServer) settle(tb testing.TB, wait time.Duration) (uint64, memHealth) {
	tb.Helper()
	time.Sleep(wait)
	var minRSS uint64
	var best memHealth
	for i := 0; i < 5; i++ {
		if r := s.rss(tb); minRSS == 0 || r < minRSS {
			minRSS = r
		}
		h, err := s.health()
		if err != nil {
			tb.Fatal(err)
		}
		if best.Sys == 0 || h.HeapAlloc < best.HeapAlloc {
			best.HeapAlloc, best.Sys = h.HeapAlloc, h.Sys
		}
		best.Connections, best.Sockets = h.Connections, h.Sockets
		if best.Goroutines == 0 || h.Goroutines < best.Goroutines {
			best.Goroutines = h.Goroutines
		}
		time.Sleep(400 * time.Millisecond)
	}
	return minRSS, best
}

// memClients are idle Socket.IO clients connected to "/" over WebSocket;
// each has one goroutine that answers pings and discards everything else.
type memClients struct {
	mu    sync.Mutex
	conns []*websocket.Conn
	pongs atomic.Int64
}

func (mc *memClients) open(url string, n int) error {
	d := &websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 256, WriteBufferSize: 256}
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for firstErr.Load() == nil && next.Add(1) <= int64(n) {
				c, err := testkit.DialSocketIO(d, url, 30*time.Second)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				mc.mu.Lock()
				mc.conns = append(mc.conns, c)
				mc.mu.Unlock()
				go mc.idle(c)
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (mc *memClients) idle(c *websocket.Conn) {
	for {
		kind, b, err := c.ReadMessage()
		if err != nil {
			return
		}
		if kind == websocket.TextMessage && len(b) == 1 && b[0] == '2' {
			if c.WriteMessage(websocket.TextMessage, []byte("3")) != nil {
				return
			}
			mc.pongs.Add(1)
		}
	}
}

func (mc *memClients) close() {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	for _, c := range mc.conns {
		_ = c.Close()
	}
	mc.conns = nil
}

// measureIdleMemory runs the whole measurement with n idle connections.
func measureIdleMemory(tb testing.TB, n int) memResult {
	tb.Helper()
	memRaiseNoFile()
	dir := tb.TempDir()
	bin := memServerBinary(tb)
	srv := startMemServer(tb, bin, dir)
	url := "ws://" + srv.addr + "/socket.io/?EIO=4&transport=websocket"

	clients := &memClients{}
	tb.Cleanup(clients.close)
	// Warm-up: a few connections that stay open, so that what the first
	// connection initialises (pools, the listener's goroutines) is in the
	// baseline.
	if err := clients.open(url, memWarmConns); err != nil {
		tb.Fatalf("warm-up: %v; server stderr:\n%s", err, srv.stderr)
	}
	rssBefore, hBefore := srv.settle(tb, time.Second)

	start := time.Now()
	if err := clients.open(url, n); err != nil {
		tb.Fatalf("after %d connections: %v; server stderr:\n%s", len(clients.conns), err, srv.stderr)
	}
	connectTime := time.Since(start)
	rssAfter, hAfter := srv.settle(tb, 2*time.Second)
	if want := int64(n + memWarmConns); hAfter.Connections != want || hAfter.Sockets != want {
		tb.Fatalf("server has %d connections and %d sockets, want %d", hAfter.Connections, hAfter.Sockets, want)
	}
	if hold, err := time.ParseDuration(os.Getenv("SF_MEMTEST_HOLD")); err == nil {
		tb.Logf("holding %v: server pid %d at %s", hold, srv.proc.PID(), srv.addr)
		time.Sleep(hold)
	}
	return memResult{
		Conns:     n,
		RSSBefore: rssBefore, RSSAfter: rssAfter,
		HeapBefore: hBefore.HeapAlloc, HeapAfter: hAfter.HeapAlloc,
		SysBefore: hBefore.Sys, SysAfter: hAfter.Sys,
		GoroutinesBefor: hBefore.Goroutines, GoroutinesAfter: hAfter.Goroutines,
		Connect: connectTime,
	}
}

func TestIdleWebSocketMemory(t *testing.T) {
	if os.Getenv("SF_MEMTEST") != "1" {
		t.Skip("heavy (10,000 connections): set SF_MEMTEST=1")
	}
	r := measureIdleMemory(t, memConns())
	t.Log(r)
	if per := r.rssPerConn(); per > memBudgetPerConn {
		t.Errorf("%.0f B of RSS per idle connection, budget %d", per, memBudgetPerConn)
	}
	if g := r.goroutinesPerConn(); g > 1.05 {
		t.Errorf("%.2f goroutines per idle connection, want at most 1", g)
	}
}

// The measurement is made once per process; every b.N round reports it.
var (
	memBenchOnce   sync.Once
	memBenchResult memResult
)

func BenchmarkIdleWebSocketMemory(b *testing.B) {
	if testing.Short() {
		b.Skip("heavy")
	}
	memBenchOnce.Do(func() {
		memBenchResult = measureIdleMemory(b, memConns())
		b.Log(memBenchResult)
	})
	r := memBenchResult
	if r.Conns == 0 {
		b.Fatal("measurement failed")
	}
	for i := 0; i < b.N; i++ {
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(r.rssPerConn(), "B/conn")
	b.ReportMetric(r.heapPerConn(), "heap-B/conn")
	b.ReportMetric(r.goroutinesPerConn(), "goroutines/conn")
}
