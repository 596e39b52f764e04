package main

// End-to-end tests: the real core binary (cmd/socket-server) with this
// plugin as its log_sink subprocess, against the strict fake Elasticsearch
// of fakees_test.go. Both binaries are built once per test process (testkit).

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

// coreProc is a running core with this plugin as its log sink.
type coreProc struct {
	proc   *testkit.Process
	addr   string
	stderr *testkit.Buffer
	probe  map[string]bool // sids of the start-up probe's sessions
}

// buildCoreAndPlugin builds the core and the plugin (once per test
// process) and returns the core's path and a plugin_dir holding the plugin.
func buildCoreAndPlugin(tb testing.TB) (bin, pluginDir string) {
	tb.Helper()
	return testkit.ServerAndPlugins(tb, "logsink-elasticsearch")
}

// sinkConfig is the core's configuration: server block, the log_sink block
// with extra attributes and the given namespace body.
func sinkConfig(pluginDir, level, serverExtra, esURL, sinkExtra, nsBody string) string {
	return fmt.Sprintf(`
server {
  listen     = env("LISTEN_ADDR")
  plugin_dir = %q
  log_level  = %q
%s
}
log_sink "elasticsearch" {
  url            = %q
  flush_interval = "200ms"
%s
}
namespace "/" {
%s
}
`, pluginDir, level, serverExtra, esURL, sinkExtra, nsBody)
}

func startCore(tb testing.TB, bin, cfg string) *coreProc {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "c.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	addr := testkit.FreeAddr(tb)
	p := &coreProc{addr: addr, stderr: &testkit.Buffer{}}
	cmd := testkit.Command(bin, []string{"LISTEN_ADDR=" + addr}, "run", "--config", path)
	cmd.Stdout, cmd.Stderr = io.Discard, p.stderr // the tests count stderr's lines
	p.proc = testkit.Start(tb, cmd)
	tb.Cleanup(p.proc.Kill) // no drain: the tests that want one call stop
	up := testkit.Poll(15*time.Second, func() bool {
		if p.proc.Exited() {
			tb.Fatalf("core exited with %d at start:\n%s", p.proc.ExitCode(), p.stderr)
		}
		res, err := http.Get("http://" + addr + "/socket.io/?EIO=4&transport=polling")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	if !up {
		tb.Fatalf("core at %s did not come up:\n%s", addr, p.stderr)
	}
	// The probe's session is logged (at debug) before its answer; wait for
	// the line to pass through the pipe.
	p.probe = map[string]bool{}
	testkit.Poll(2*time.Second, func() bool {
		for k := range connLines(p.stderr.Lines()) {
			p.probe[k[strings.IndexByte(k, '|')+1:]] = true
		}
		return len(p.probe) > 0
	})
	return p
}

// stop sends SIGTERM and waits (bounded) for the exit; it fails unless 0.
func (p *coreProc) stop(tb testing.TB, within time.Duration) time.Duration {
	tb.Helper()
	start := time.Now()
	_ = p.proc.Signal(syscall.SIGTERM)
	if !p.proc.Wait(within) {
		tb.Fatalf("core still running %v after SIGTERM:\n%s", within, p.stderr)
	}
	if code := p.proc.ExitCode(); code != 0 {
		tb.Fatalf("core exit code %d:\n%s", code, p.stderr)
	}
	return time.Since(start)
}

var connMsgs = map[string]bool{"connection opened": true, "connection closed": true}

// connLines: "msg|sid" → times the core printed it on stderr.
func connLines(lines []string) map[string]int {
	out, _ := connLinesWS(lines, nil)
	return out
}

// connLinesWS is connLines and the same restricted to the test's clients:
// the start-up probe (a polling handshake, sids in probe) opens a session
// too.
func connLinesWS(lines []string, probe map[string]bool) (all, ws map[string]int) {
	all = map[string]int{}
	ws = map[string]int{}
	for _, l := range lines {
		var e map[string]any
		if json.Unmarshal([]byte(l), &e) != nil {
			continue
		}
		msg, _ := e["msg"].(string)
		sid, _ := e["sid"].(string)
		if connMsgs[msg] && sid != "" {
			all[msg+"|"+sid]++
			if !probe[sid] {
				ws[msg+"|"+sid]++
			}
		}
	}
	return all, ws
}

// connDocs: "message|sid" → times the fake stored it.
func (f *fakeES) connDocs() map[string]int {
	_, _, _, stored := f.snapshot()
	out := map[string]int{}
	for _, d := range stored {
		msg, _ := d["message"].(string)
		sid, _ := d["sid"].(string)
		if connMsgs[msg] && sid != "" {
			out[msg+"|"+sid]++
		}
	}
	return out
}

func countPrefix(m map[string]int, prefix string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// checkExactlyOnce: every line the core printed is stored exactly once, and
// nothing was stored that the core did not print.
func checkExactlyOnce(t *testing.T, printed, stored map[string]int) {
	t.Helper()
	bad := 0
	for k, n := range printed {
		if n != 1 {
			t.Errorf("core printed %q %d times", k, n)
		}
		if stored[k] != 1 {
			if bad++; bad <= 10 {
				t.Errorf("%q stored %d times, want 1", k, stored[k])
			}
		}
	}
	for k := range stored {
		if printed[k] == 0 {
			t.Errorf("%q stored but never printed", k)
		}
	}
	if bad > 10 {
		t.Errorf("... %d entries not stored exactly once in all", bad)
	}
}

// TestNothingLostOnSIGTERM: 200 clients connect; 150 close themselves, 50
// are closed by the drain. Every "connection opened"/"connection closed"
// line the core printed reaches Elasticsearch exactly once, although the
// core exits right after SIGTERM (the flush at shutdown).
func TestNothingLostOnSIGTERM(t *testing.T) {
	es := newFakeES(t)
	bin, pdir := buildCoreAndPlugin(t)
	core := startCore(t, bin, sinkConfig(pdir, "debug", `  drain { timeout = "1s" }`, es.url, "", ""))

	const n, closeFirst = 200, 150
	clients := make([]*websocket.Conn, n)
	for i := range clients {
		clients[i] = testkit.ConnectSocketIO(t, core.addr)
	}
	for _, c := range clients[:closeFirst] {
		c.Close()
	}
	if !testkit.Poll(10*time.Second, func() bool {
		_, m := connLinesWS(core.stderr.Lines(), core.probe)
		return countPrefix(m, "connection opened|") == n && countPrefix(m, "connection closed|") == closeFirst
	}) {
		_, m := connLinesWS(core.stderr.Lines(), core.probe)
		t.Fatalf("core printed %d opened, %d closed; want %d, %d", countPrefix(m, "connection opened|"), countPrefix(m, "connection closed|"), n, closeFirst)
	}
	took := core.stop(t, 15*time.Second)

	printed, ws := connLinesWS(core.stderr.Lines(), core.probe)
	if o, c := countPrefix(ws, "connection opened|"), countPrefix(ws, "connection closed|"); o != n || c != n {
		t.Fatalf("core printed %d opened, %d closed; want %d each", o, c, n)
	}
	stored := es.connDocs()
	checkExactlyOnce(t, printed, stored)
	requests, refused, _, all := es.snapshot()
	t.Logf("%d connection lines printed, %d stored; exit 0 %v after SIGTERM; fake ES: %d bulk requests (%d refused), %d documents in all",
		len(printed), len(stored), took.Round(time.Millisecond), requests, refused, len(all))
}

// outageDuration is the outage the test simulates: 6 s by default to stay
// fast. The scenario (Elasticsearch down for 30 s) is the same
// mechanism, only longer — run it with SF_ES_OUTAGE=30s.
func outageDuration(t *testing.T) time.Duration {
	if v := os.Getenv("SF_ES_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SF_ES_OUTAGE=%q: %v", v, err)
		}
		return d
	}
	return 6 * time.Second
}

// downableES is the fake answering 503 to every bulk request while down.
func downableES(t *testing.T) (*fakeES, *atomic.Bool) {
	es := newFakeES(t)
	down := &atomic.Bool{}
	es.mu.Lock()
	es.wholeFail = func(int) int {
		if down.Load() {
			return 503
		}
		return 0
	}
	es.mu.Unlock()
	return es, down
}

// churn connects and closes clients, one every `every`, for d (or, when
// count > 0, that many as fast as possible). It returns how many.
func churn(t *testing.T, addr string, d, every time.Duration, count int) int {
	t.Helper()
	end := time.Now().Add(d)
	n := 0
	for (count > 0 && n < count) || (count == 0 && time.Now().Before(end)) {
		c, err := testkit.DialSocketIO(websocket.DefaultDialer, testkit.SocketIOURL(addr), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		n++
		if every > 0 {
			time.Sleep(every)
		}
	}
	return n
}

// TestOutageLosesNothingWithinBuffer: Elasticsearch answers 503 for the
// outage while clients come and go; the entries wait in the plugin (within
// its buffer) and, once Elasticsearch is back, all arrive exactly once.
// Then with buffer = 50 the same outage overflows the plugin: its Write
// refuses batches ("buffer full"), the core retries them 3 times, then
// drops them and says so ("plugin queue: dropping a batch of log entries");
// Elasticsearch gets fewer entries than were logged, none twice.
func TestOutageLosesNothingWithinBuffer(t *testing.T) {
	outage := outageDuration(t)
	bin, pdir := buildCoreAndPlugin(t)

	t.Run("within buffer", func(t *testing.T) {
		es, down := downableES(t)
		// retry_max bounds the plugin's backoff so that recovery is seen
		// within about a second of Elasticsearch coming back.
		core := startCore(t, bin, sinkConfig(pdir, "debug", "", es.url, `  retry_max = "1s"`, ""))
		before := churn(t, core.addr, 0, 0, 20)

		down.Store(true)
		start := time.Now()
		during := churn(t, core.addr, outage, 50*time.Millisecond, 0)
		time.Sleep(time.Until(start.Add(outage)))
		printedDuring := connLines(core.stderr.Lines())
		down.Store(false)
		back := time.Now()

		if !testkit.Poll(20*time.Second, func() bool {
			stored := es.connDocs()
			for k := range printedDuring {
				if stored[k] == 0 {
					return false
				}
			}
			return true
		}) {
			t.Errorf("entries logged during the outage not in Elasticsearch 20 s after it came back")
		}
		recovery := time.Since(back)
		after := churn(t, core.addr, 0, 0, 20)
		core.stop(t, 15*time.Second)

		printed, ws := connLinesWS(core.stderr.Lines(), core.probe)
		if want := 2 * (before + during + after); len(ws) != want {
			t.Errorf("core printed %d WebSocket connection lines, want %d", len(ws), want)
		}
		checkExactlyOnce(t, printed, es.connDocs())
		_, refused, _, _ := es.snapshot()
		if refused == 0 {
			t.Error("the fake refused no bulk request: the outage was not exercised")
		}
		t.Logf("outage %v: %d clients during it (%d connection lines printed in all, all stored exactly once); %d bulk requests answered 503; all outage entries stored %v after Elasticsearch came back",
			outage, during, len(printed), refused, recovery.Round(time.Millisecond))
	})

	t.Run("buffer overflows", func(t *testing.T) {
		es, down := downableES(t)
		core := startCore(t, bin, sinkConfig(pdir, "debug", "", es.url, "  retry_max = \"1s\"\n  buffer = 50", ""))
		down.Store(true)
		start := time.Now()
		// 200 clients at once: ~400 connection lines plus the rest of the
		// debug logging, far beyond the 50 entries the plugin may hold.
		during := churn(t, core.addr, 0, 0, 200)
		const dropLine = "plugin queue: dropping a batch of log entries"
		if !testkit.Poll(outage+10*time.Second, func() bool {
			return strings.Contains(core.stderr.String(), dropLine)
		}) {
			t.Fatalf("no %q line on the core's stderr:\n%s", dropLine, core.stderr.String())
		}
		time.Sleep(time.Until(start.Add(outage)))
		down.Store(false)
		// Let what the plugin holds arrive, then shut down (which flushes).
		time.Sleep(2 * time.Second)
		core.stop(t, 15*time.Second)

		printed := connLines(core.stderr.Lines())
		stored := es.connDocs()
		for k, n := range stored {
			if n != 1 || printed[k] != 1 {
				t.Errorf("%q stored %d times, printed %d times", k, n, printed[k])
			}
		}
		if len(stored) >= len(printed) {
			t.Errorf("%d of %d connection lines stored: expected some dropped with buffer = 50", len(stored), len(printed))
		}
		text := core.stderr.String()
		if !strings.Contains(text, "buffer full") {
			t.Error(`core's stderr does not name the plugin's "buffer full" refusal`)
		}
		drops := 0
		for _, l := range core.stderr.Lines() {
			if strings.Contains(l, dropLine) {
				drops++
			}
		}
		t.Logf("buffer = 50, outage %v: %d clients, %d connection lines printed, %d stored (none twice); %d %q lines",
			outage, during, len(printed), len(stored), drops, dropLine)
	})
}
