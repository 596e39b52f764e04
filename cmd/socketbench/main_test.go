package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

// The scenarios run against the real server binary and plugins, built from
// the working tree (testkit.Build), with the benchmark configs of bench/,
// small numbers, no timing asserts but generous ones.

// startServer runs socket-server with one of bench/'s configs and
// returns its base URL and pid.
func startServer(t *testing.T, configName string, env ...string) (string, int) {
	t.Helper()
	bin, plugins := testkit.ServerAndPlugins(t, "auth-jwt", "adapter-redis")
	addr := testkit.FreeAddr(t)
	env = append([]string{"LISTEN_ADDR=" + addr, "PLUGIN_DIR=" + plugins}, env...)
	srv := testkit.Start(t, testkit.Command(bin, env, "run", "--config", filepath.Join(testkit.ModuleRoot(t), "bench", configName)))
	t.Cleanup(srv.Kill) // before testkit's SIGTERM: a drain would only slow the test
	base := "http://" + addr
	testkit.WaitHTTP(t, 15*time.Second, base+"/socket.io/?EIO=4&transport=polling")
	return base, srv.PID()
}

// result runs a scenario through run() and returns its JSON line.
func result(t *testing.T, scenario string, args ...string) map[string]any {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if code := run(ctx, scenario, args, &out, &errOut); code != 0 {
		t.Fatalf("socketbench %s %v: exit %d\n%s", scenario, args, code, errOut.String())
	}
	t.Logf("%s", errOut.String())
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("JSON line: %v\n%s", err, out.String())
	}
	return m
}

func num(t *testing.T, m map[string]any, field string) float64 {
	t.Helper()
	v, ok := m[field].(float64)
	if !ok {
		t.Fatalf("no numeric field %q in %v", field, m)
	}
	return v
}

func TestFanoutWebSocket(t *testing.T) {
	t.Parallel()
	url, pid := startServer(t, "socketfleet.hcl")
	m := result(t, "fanout", "--url", url, "-n", "20", "--rate", "50", "--warmup", "300ms", "--duration", "1s",
		"--server-pid", strconv.Itoa(pid), "--label", "ours", "--name", "fanout-test")
	sent := num(t, m, "sent")
	if sent < 30 || sent > 70 { // 50/s for 1.3 s
		t.Errorf("sent %v messages at 50/s over 1.3 s", sent)
	}
	if num(t, m, "received") != sent*20 || num(t, m, "lost") != 0 || num(t, m, "duplicated") != 0 {
		t.Errorf("want every message delivered once to 20 subscribers: %v", m)
	}
	if d := num(t, m, "delivered_per_s"); d < 300 || d > 3000 {
		t.Errorf("delivered_per_s %v, want about 1000", d)
	}
	p50, p99, mx := num(t, m, "lat_p50_ms"), num(t, m, "lat_p99_ms"), num(t, m, "lat_max_ms")
	if !(p50 > 0 && p50 <= p99 && p99 <= mx && mx < 5000) {
		t.Errorf("latency p50 %v p99 %v max %v", p50, p99, mx)
	}
	if num(t, m, "server_cpu_us_per_msg") <= 0 || num(t, m, "gen_cpu_s") <= 0 {
		t.Errorf("no CPU measured: %v", m)
	}
	if m["name"] != "fanout-test" || m["label"] != "ours" || m["scenario"] != "fanout" {
		t.Errorf("name/label/scenario not copied: %v", m)
	}
}

func TestFanoutPolling(t *testing.T) {
	t.Parallel()
	url, _ := startServer(t, "socketfleet.hcl")
	m := result(t, "fanout", "--url", url, "--transport", "polling", "-n", "5", "--publishers", "2",
		"--rate", "40", "--warmup", "200ms", "--duration", "1s")
	sent := num(t, m, "sent")
	if sent < 20 || num(t, m, "received") != sent*5 || num(t, m, "lost") != 0 || num(t, m, "duplicated") != 0 {
		t.Errorf("polling: want every message of 2 publishers delivered once to 5 subscribers: %v", m)
	}
	if m["transport"] != "polling" || num(t, m, "lat_p50_ms") <= 0 {
		t.Errorf("%v", m)
	}
}

func TestFanoutMaxRate(t *testing.T) {
	t.Parallel()
	url, _ := startServer(t, "socketfleet.hcl")
	m := result(t, "fanout", "--url", url, "-n", "10", "--rate", "0", "--window", "8", "--warmup", "200ms", "--duration", "1s")
	sent := num(t, m, "sent")
	if sent < 20 { // loopback, 10 subscribers: thousands per second when the machine is idle
		t.Errorf("only %v messages sent as fast as delivered", sent)
	}
	if num(t, m, "received") != sent*10 || num(t, m, "lost") != 0 || num(t, m, "window_stalls") != 0 {
		t.Errorf("max rate with a window must lose nothing: %v", m)
	}
}

// TestLossAndDuplicateDetection publishes by hand through the real server:
// seq 0, 1, 1 (again), 3 (2 skipped). Every subscriber must count one
// duplicate and one loss.
func TestLossAndDuplicateDetection(t *testing.T) {
	t.Parallel()
	url, _ := startServer(t, "socketfleet.hcl")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := dialOptions{baseURL: url, path: "/socket.io/", transport: "websocket"}
	f := &fanoutRun{c: &config{room: "r"}, sent: make([]atomic.Uint64, 1), nsubs: 3}
	f.measureTs.Store(1)
	var subs []*subscriber
	var readers sync.WaitGroup
	for i := 0; i < 3; i++ {
		cl, err := dial(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.close()
		if err := cl.joinRoom(ctx, "r"); err != nil {
			t.Fatal(err)
		}
		s := &subscriber{cl: cl, seen: make([][]uint64, 1)}
		subs = append(subs, s)
		readers.Add(1)
		go func() { defer readers.Done(); f.read(s) }()
	}
	pub, err := dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.close()
	for _, m := range []struct{ pub, seq int }{{0, 0}, {0, 1}, {0, 1}, {0, 3}, {7, 0}} {
		if err := pub.send(appendMessage(nil, `"r"`, m.pub, m.seq, mono(), 100)); err != nil {
			t.Fatal(err)
		}
	}
	f.sent[0].Store(4) // seq 0..3 "sent"; publisher 7 does not exist
	for f.received.Load() < 9 || f.duplicated.Load() < 3 {
		if !sleepCtx(ctx, 10*time.Millisecond) {
			t.Fatalf("received %d, duplicated %d", f.received.Load(), f.duplicated.Load())
		}
	}
	for _, s := range subs {
		s.cl.close()
	}
	readers.Wait()
	received, lost, losing, disconnected := f.tally(subs)
	if received != 9 || lost != 3 || losing != 3 || disconnected != 0 || f.duplicated.Load() != 3 {
		t.Errorf("received %d lost %d losing %d disconnected %d duplicated %d; want 9 3 3 0 3",
			received, lost, losing, disconnected, f.duplicated.Load())
	}
	if f.local.n.Load() != 9 {
		t.Errorf("%d latencies recorded, want 9", f.local.n.Load())
	}
}

func TestConnectRSS(t *testing.T) {
	t.Parallel()
	url, pid := startServer(t, "socketfleet.hcl")
	m := result(t, "connect", "--url", url, "-n", "200", "-c", "20", "--hold", "300ms", "--server-pid", strconv.Itoa(pid))
	if num(t, m, "connected") != 200 || num(t, m, "failed") != 0 || num(t, m, "alive") != 200 {
		t.Errorf("want 200 connected and alive: %v", m)
	}
	if r := num(t, m, "connects_per_s"); r <= 0 {
		t.Errorf("connects_per_s %v", r)
	}
	// Per-connection RSS is noisy at 200 connections; it is positive and
	// far below 1 MB.
	if r := num(t, m, "rss_per_conn_bytes"); r <= 0 || r > 1<<20 {
		t.Errorf("rss_per_conn_bytes %v", r)
	}
	if num(t, m, "rss_before_bytes") <= 0 || num(t, m, "server_cpu_us_per_conn") <= 0 {
		t.Errorf("%v", m)
	}
}

func TestHandshakeJWT(t *testing.T) {
	t.Parallel()
	url, pid := startServer(t, "socketfleet-jwt.hcl", "JWT_SECRET=bench-secret")
	m := result(t, "handshake", "--url", url, "-c", "10", "--warmup", "200ms", "--duration", "1s",
		"--jwt-secret", "bench-secret", "--server-pid", strconv.Itoa(pid))
	if num(t, m, "handshakes") < 10 || num(t, m, "failed") != 0 || m["jwt"] != true {
		t.Errorf("want handshakes with a valid token, none failed: %v", m)
	}
	if num(t, m, "handshakes_per_s") <= 0 || num(t, m, "lat_p50_ms") <= 0 {
		t.Errorf("%v", m)
	}
	// A token signed with another secret is refused, and counted as such.
	m = result(t, "handshake", "--url", url, "-c", "2", "--warmup", "100ms", "--duration", "500ms", "--jwt-secret", "wrong")
	if num(t, m, "handshakes") != 0 || num(t, m, "failed") == 0 || !strings.Contains(m["first_error"].(string), "refused") {
		t.Errorf("want refusals with a wrong secret: %v", m)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	redis := testkit.StartRedis(t)
	addr := redis.Addr()
	env := []string{"REDIS_URL=redis://" + addr, "REDIS_PREFIX=socketbench-test"}
	u1, p1 := startServer(t, "socketfleet-redis.hcl", env...)
	u2, p2 := startServer(t, "socketfleet-redis.hcl", env...)
	m := result(t, "cluster", "--url", u1+","+u2, "-n", "20", "--rate", "30", "--warmup", "300ms", "--duration", "1s",
		"--server-pid", fmt.Sprintf("%d,%d", p1, p2), "--redis-pid", strconv.Itoa(redis.Proc.PID()))
	sent := num(t, m, "sent")
	if sent < 20 || num(t, m, "received") != sent*20 || num(t, m, "lost") != 0 || num(t, m, "duplicated") != 0 {
		t.Errorf("want every message delivered once on both instances: %v", m)
	}
	per, _ := m["subscribers_per_url"].([]any)
	if len(per) != 2 || per[0].(float64) != 10 || per[1].(float64) != 10 {
		t.Errorf("subscribers_per_url %v", m["subscribers_per_url"])
	}
	if num(t, m, "local_p50_ms") <= 0 || num(t, m, "remote_p50_ms") <= 0 {
		t.Errorf("local and remote latency: %v", m)
	}
	if len(m["server_pids"].([]any)) < 3 { // two cores and at least one plugin
		t.Errorf("server_pids %v: plugins not counted", m["server_pids"])
	}
}
