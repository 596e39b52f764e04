package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// TestRedisOutageThroughTheCore is the fault test, through the real
// core: two instances built from source, the adapter plugin with a small
// outgoing queue (200) and the Prometheus metrics plugin, clients of both
// in room "r", and a publisher on instance A sending a steady 200 chat
// messages a second. Redis is killed 1.5 s in, for 3 s, and started again
// on the same port.
//
// It checks: no instance (or plugin) crashes; A's members get every
// message, in order, once; /ready on A says the adapter is degraded during
// the outage and 200 after; B's members get messages again by themselves
// after Redis is back (the stream goes on for 6 s, and then until they do,
// 15 s at most), never one twice; and what B's members missed is exactly
// what A counted as dropped (the plugin's redis_publish_dropped_total plus
// the core's cluster_messages_dropped_total, read from A's /metrics). 600
// messages fall in the outage and the queue holds 200, so some really are
// dropped.
//
// A message published after Redis is back but before B has subscribed
// again reaches nobody on B and is counted nowhere: Redis accepted it. The
// test tells such losses from drops with A's count of the messages Redis
// accepted (redis_published_messages_total).
func TestRedisOutageThroughTheCore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts two servers")
	}
	const (
		rate     = 200              // messages per second
		minTotal = 6 * rate         // at least 6 s of traffic
		maxSend  = 15 * time.Second // then until B gets messages sent after the outage, for at most this long
		stopAt   = 3 * rate / 2     // message index at which Redis is killed (1.5 s in)
		outage   = 3 * time.Second  // Redis down
		queueCap = 200
	)
	r := testkit.StartRedis(t)
	tmp := t.TempDir()
	server, pluginDir := testkit.ServerAndPlugins(t, "adapter-redis", "metrics-prometheus")
	cfgPath := filepath.Join(tmp, "config.hcl")
	cfg := fmt.Sprintf(`server {
  listen        = env("LISTEN_ADDR")
  instance_id   = env("INSTANCE_ID")
  plugin_dir    = %q
  ping_interval = "60s"
  ping_timeout  = "60s"
  limits {
    packet_rate = 1000 # the publisher sends 200/s on one connection, over the default 100
  }
}
adapter "redis" {
  url   = %q
  queue = %d
}
metrics "prometheus" {}
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
  event "chat" {
    broadcast { to = args[0].room }
  }
}
`, pluginDir, r.URL(), queueCap)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startInstance(t, server, cfgPath, "a")
	b := startInstance(t, server, cfgPath, "b")

	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	testkit.WaitForState(t, 30*time.Second, "two pattern subscribers on Redis", func() (bool, string) {
		list, err := rdb.ClientList(context.Background()).Result()
		return strings.Count(list, " psub=1 ") >= 2, fmt.Sprint(list, err)
	})

	pub := dialClient(t, a.addr)
	aMembers := []*client{pub, dialClient(t, a.addr)}
	bMembers := []*client{dialClient(t, b.addr), dialClient(t, b.addr)}
	for _, c := range append(append([]*client(nil), aMembers...), bMembers...) {
		c.emitWithAck(t, `["join","r"]`)
	}
	// Every path works before the fault.
	chat := func(n int) string { return fmt.Sprintf(`42["chat",{"room":"r","n":%d}]`, n) }
	if err := pub.conn.WriteMessage(websocket.TextMessage, []byte(`42["chat",{"room":"r","n":-1}]`)); err != nil {
		t.Fatal(err)
	}
	for i, c := range append(append([]*client(nil), aMembers...), bMembers...) {
		c.expect(t, fmt.Sprintf("warm-up message, member %d", i), `42["chat",{"room":"r","n":-1}]`)
	}

	// The publisher: message n leaves at start + n/rate, whatever the
	// delays before it. It goes on for minTotal messages, and after that
	// until B's members get a message sent after Redis came back (how long
	// the plugins take to resume is theirs to decide), so that the tail of
	// the stream shows whether cross-instance delivery resumed.
	killed := make(chan struct{})
	resumed := make(chan struct{}) // Redis is dead: publish again
	var sending atomic.Int64       // the message being sent
	resumeFrom := atomic.Int64{}   // B must get a message from this number on; -1 until Redis is back
	resumeFrom.Store(-1)
	type result struct {
		total int
		err   error
	}
	sent := make(chan result, 1)
	start := time.Now()
	go func() {
		for n := 0; ; n++ {
			sending.Store(int64(n))
			if d := time.Until(start.Add(time.Duration(n) * time.Second / rate)); d > 0 {
				time.Sleep(d)
			}
			if n == stopAt {
				// Redis pub/sub is at most once: a message Redis took in
				// the instant it is killed may never reach B, and nobody
				// can count it. So nothing is sent while it dies.
				close(killed)
				<-resumed
			}
			if n >= minTotal && n%20 == 0 {
				from := resumeFrom.Load()
				if last, ok := chatNumber(lastOf(bMembers[0].unread()), true); from >= 0 && ok && int64(last) >= from {
					sent <- result{total: n}
					return
				}
				if time.Since(start) > maxSend {
					sent <- result{total: n, err: fmt.Errorf("after %v, B's members still get nothing sent after Redis came back", maxSend)}
					return
				}
			}
			if err := pub.conn.WriteMessage(websocket.TextMessage, []byte(chat(n))); err != nil {
				sent <- result{total: n, err: fmt.Errorf("publisher, message %d: %w", n, err)}
				return
			}
		}
	}()

	<-killed
	for i, c := range bMembers {
		testkit.WaitForState(t, 10*time.Second, fmt.Sprintf("B member %d has every message before the outage", i), func() (bool, string) {
			got := c.unread()
			return len(got) > 0 && got[len(got)-1] == chat(stopAt-1), fmt.Sprintf("last %q", lastOf(got))
		})
	}
	r.Kill()
	close(resumed)
	downAt := time.Now()
	// /ready on A during the outage; the plugin's status is polled once a
	// second, so give it the whole outage to show.
	var degraded []string
	for time.Since(downAt) < outage {
		if code, body := getURL(a.addr, "/ready"); code == http.StatusServiceUnavailable && strings.Contains(body, "cluster adapter degraded") {
			degraded = append(degraded, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.Start()
	upAt := time.Now()
	resumeFrom.Store(sending.Load() + 1)
	t.Logf("Redis down %v (from message %d), back %v after it was killed", outage, stopAt, upAt.Sub(downAt).Round(time.Millisecond))

	res := <-sent
	total := res.total
	t.Logf("sent %d messages in %v; Redis was back from message %d", total, time.Since(start).Round(time.Millisecond), resumeFrom.Load())
	if res.err != nil {
		t.Error(res.err)
	}
	if len(degraded) == 0 {
		t.Errorf("/ready on A never reported the cluster adapter degraded during the %v outage", outage)
	} else {
		t.Logf("/ready during the outage (%d polls of %d): %s", len(degraded), int(outage/(100*time.Millisecond)), strings.TrimSpace(degraded[0]))
	}
	testkit.WaitForState(t, 20*time.Second, "/ready on A back to 200", func() (bool, string) {
		code, body := getURL(a.addr, "/ready")
		return code == http.StatusOK, fmt.Sprint(code, body)
	})
	// B's members resume by themselves: the last message reaches them.
	for i, c := range bMembers {
		testkit.WaitForState(t, 20*time.Second, fmt.Sprintf("B member %d receiving the last message", i), func() (bool, string) {
			got := c.unread()
			return len(got) > 0 && got[len(got)-1] == chat(total-1), fmt.Sprintf("%d packets, last %q", len(got), lastOf(got))
		})
	}
	time.Sleep(500 * time.Millisecond) // duplicates and strays would be in by now

	// A's members: everything, in order, once.
	for i, c := range aMembers {
		nums := chatNumbers(t, fmt.Sprintf("A member %d", i), c.unread())
		if len(nums) != total {
			t.Errorf("A member %d got %d messages, want %d (local delivery must not suffer from Redis)", i, len(nums), total)
		}
		for j, n := range nums {
			if n != j {
				t.Errorf("A member %d: message %d is number %d", i, j, n)
				break
			}
		}
	}
	// B's members: in order, no duplicate; the same missed by each.
	var missed []int
	for i, c := range bMembers {
		nums := chatNumbers(t, fmt.Sprintf("B member %d", i), c.unread())
		for j := 1; j < len(nums); j++ {
			if nums[j] <= nums[j-1] {
				t.Errorf("B member %d: %d after %d (duplicate or out of order)", i, nums[j], nums[j-1])
			}
		}
		m := missingOf(nums, total)
		if i == 0 {
			missed = m
			t.Logf("B missed %d messages: %s", len(m), numRanges(m))
		} else if fmt.Sprint(m) != fmt.Sprint(missed) {
			t.Errorf("B members missed different messages: %s and %s", numRanges(missed), numRanges(m))
		}
	}

	// What A counted as dropped.
	metricsA := getMetrics(t, a.addr)
	dropped := 0.0
	for _, name := range []string{"redis_publish_dropped_total", "cluster_messages_dropped_total"} {
		v, lines := metricsA.sum(name)
		t.Logf("A: %s", strings.Join(lines, "; "))
		dropped += v
	}
	if len(missed) == 0 {
		t.Errorf("B missed nothing: the outage dropped nothing, the test does not test drops")
	}
	published, _ := metricsA.sum("redis_published_messages_total")
	if published+dropped != float64(total+1) {
		t.Errorf("A: published %v + dropped %v != %d sent (warm-up included)", published, dropped, total+1)
	}
	if float64(len(missed)) != dropped {
		// Messages Redis accepted that B's members did not get were
		// published while B was not subscribed (after Redis came back,
		// before B's plugin had subscribed again): lost, counted nowhere.
		lost := published - 1 - float64(total-len(missed))
		t.Errorf("B's members missed %d messages (%s) but A counts %v dropped: %v messages that Redis accepted (A: redis_published_messages_total %v) never reached B",
			len(missed), numRanges(missed), dropped, lost, published)
	}

	// The plugin's Redis metrics reach the core's /metrics, with the
	// instance label, and pass promtool: the outage shows as errors.
	if errs, lines := metricsA.sum("redis_errors_total"); errs == 0 {
		t.Errorf("A: no Redis errors counted through the outage: %v", lines)
	}
	if n, lines := metricsA.sum("redis_command_duration_seconds_count"); n == 0 || !strings.Contains(lines[0], `instance="`) {
		t.Errorf("A: command duration histogram: %v", lines)
	}
	if promtool, err := plugintest.LookTool("promtool"); err != nil {
		if plugintest.InCI() {
			t.Errorf("promtool is missing (apt-get install prometheus): with CI=true the exposition must be checked")
		}
	} else {
		_, body := getURL(a.addr, "/metrics")
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics on A's exposition: %v\n%s", err, out)
		}
	}

	// Nobody crashed: both instances up, their plugins never restarted.
	for _, in := range []*coreInstance{a, b} {
		in.checkAlive(t)
	}
}

// coreInstance is a socket-server process of the fault test.
type coreInstance struct {
	name, addr string
	proc       *testkit.Process
}

// startInstance runs the core with cfgPath on a free port, its output shown
// if the test fails, and stops it (SIGTERM, kill after 5 s) when the test
// ends.
func startInstance(t *testing.T, server, cfgPath, name string) *coreInstance {
	t.Helper()
	in := &coreInstance{name: name, addr: testkit.FreeAddr(t)}
	in.proc = testkit.Start(t, testkit.Command(server, []string{"LISTEN_ADDR=" + in.addr, "INSTANCE_ID=" + name}, "run", "--config", cfgPath))
	in.proc.Name = "instance " + name
	testkit.WaitForState(t, 30*time.Second, "instance "+name+" answering /health", func() (bool, string) {
		if in.proc.Exited() {
			t.Fatalf("instance %s exited: %v", name, in.proc.Err())
		}
		code, body := getURL(in.addr, "/health")
		return code == http.StatusOK, body
	})
	return in
}

// checkAlive fails the test if the process exited or a plugin restarted.
func (in *coreInstance) checkAlive(t *testing.T) {
	t.Helper()
	if in.proc.Exited() {
		t.Errorf("instance %s exited: %v", in.name, in.proc.Err())
		return
	}
	code, body := getURL(in.addr, "/health")
	var h struct {
		Plugins []struct {
			Kind     string `json:"kind"`
			Up       bool   `json:"up"`
			Restarts int    `json:"restarts"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(body), &h); code != http.StatusOK || err != nil {
		t.Errorf("instance %s /health: %d %s (%v)", in.name, code, body, err)
		return
	}
	for _, p := range h.Plugins {
		if !p.Up || p.Restarts != 0 {
			t.Errorf("instance %s: %s plugin up=%v after %d restarts", in.name, p.Kind, p.Up, p.Restarts)
		}
	}
}

func getURL(addr, path string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// exposition is a Prometheus text exposition, line by line.
type exposition []string

func getMetrics(t *testing.T, addr string) exposition {
	t.Helper()
	code, body := getURL(addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("%s/metrics: %d %s", addr, code, body)
	}
	var e exposition
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			e = append(e, l)
		}
	}
	return e
}

// sum adds up every series of the metric name, and returns them.
func (e exposition) sum(name string) (float64, []string) {
	total := 0.0
	var lines []string
	for _, l := range e {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			total += v
			lines = append(lines, l)
		}
	}
	if lines == nil {
		lines = []string{name + ": no series"}
	}
	return total, lines
}

// chatNumber extracts n from a chat packet (packet) or its JSON data.
func chatNumber(s string, packet bool) (int, bool) {
	if packet {
		var ok bool
		if s, ok = strings.CutPrefix(s, "42"); !ok {
			return 0, false
		}
	}
	var args []json.RawMessage
	if json.Unmarshal([]byte(s), &args) != nil || len(args) != 2 || string(args[0]) != `"chat"` {
		return 0, false
	}
	var p struct {
		Room string `json:"room"`
		N    *int   `json:"n"`
	}
	if json.Unmarshal(args[1], &p) != nil || p.Room != "r" || p.N == nil {
		return 0, false
	}
	return *p.N, true
}

// chatNumbers are the numbers of the chat packets received, in order; any
// other packet fails the test.
func chatNumbers(t *testing.T, who string, packets []string) []int {
	t.Helper()
	var out []int
	for _, p := range packets {
		n, ok := chatNumber(p, true)
		if !ok {
			t.Errorf("%s: unexpected packet %q", who, p)
			continue
		}
		if n >= 0 { // not the warm-up
			out = append(out, n)
		}
	}
	return out
}

// missingOf lists the numbers in [0, total) absent from nums.
func missingOf(nums []int, total int) []int {
	have := make([]bool, total)
	for _, n := range nums {
		if n >= 0 && n < total {
			have[n] = true
		}
	}
	var out []int
	for n, ok := range have {
		if !ok {
			out = append(out, n)
		}
	}
	return out
}

// numRanges renders sorted numbers as "3-7, 9".
func numRanges(ns []int) string {
	if len(ns) == 0 {
		return "none"
	}
	var parts []string
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(ns[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", ns[i], ns[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

func lastOf(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[len(ss)-1]
}
