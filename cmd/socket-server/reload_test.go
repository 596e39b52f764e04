package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/internal/testkit"
)

// reloadConfig is a config with the auth-jwt plugin whose ping rule
// answers pong; authExtra goes into the auth block, server into the
// server block.
func reloadConfig(pluginDir, pong, authExtra, server string) string {
	return `
server {
  listen     = env("LISTEN_ADDR")
  plugin_dir = "` + pluginDir + `"
  api {
    token = "` + testAPIToken + `"
  }
` + server + `
}
auth "jwt" {
  secret   = env("TEST_JWT_SECRET")
  audience = "chat"
` + authExtra + `
}
namespace "/" {
  event "ping" {
    reply { event = "` + pong + `" }
  }
}
`
}

type reloadHealth struct {
	Config struct {
		Hash       string
		Generation int
		Reloads    map[string]int
		LastError  *struct{ Message string } `json:"last_reload_error"`
	}
	Plugins []struct{ PID int }
}

func getHealth(t *testing.T, addr string) reloadHealth {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/health", nil)
	req.Header.Set("Authorization", "Bearer "+testAPIToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var h reloadHealth
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// postReload asks the instance to reload; it returns the status and body.
func postReload(t *testing.T, addr string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/reload", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+testAPIToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// pingOnce sends a ping event and returns the reply.
func pingOnce(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(`42["ping"]`)); err != nil {
		t.Fatal(err)
	}
	for {
		m := read(t, c)
		if m != "2" { // a ping of the heartbeat
			return m
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte("3"))
	}
}

// A broken config (syntax error, unknown plugin, a plugin that refuses its
// block, a setting that cannot change) is refused whole: the old config
// keeps serving the connected socket, /health shows the error with its
// file:line:col and counts it; the next good config loads, the changed
// auth block gets a new process and an unchanged one keeps its own.
func TestReloadRefusesBrokenConfigsAndLoadsTheNextGoodOne(t *testing.T) {
	dir := t.TempDir()
	buildPlugin(t, dir, "auth-jwt")
	t.Setenv("TEST_JWT_SECRET", "s3cr3t")
	path := filepath.Join(t.TempDir(), "c.hcl")
	write := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := reloadConfig(dir, "pong-a", "", "")
	write(good)
	addr := testkit.FreeAddr(t)
	srv := testkit.Start(t, testkit.Command(buildBinary(t), []string{"LISTEN_ADDR=" + addr}, "run", "--config", path))
	defer stopServer(t, srv)
	testkit.WaitHTTP(t, 10*time.Second, "http://"+addr+"/socket.io/?EIO=4&transport=polling")

	tok := token(t, jwt.MapClaims{"sub": "ann", "aud": "chat", "exp": time.Now().Add(time.Hour).Unix()}, "s3cr3t")
	c, reply := connectWS(t, addr, `{"token":"`+tok+`"}`)
	if !strings.HasPrefix(reply, "40") {
		t.Fatalf("connect: %q", reply)
	}
	if got := pingOnce(t, c); got != `42["pong-a"]` {
		t.Fatalf("before: %q", got)
	}
	h0 := getHealth(t, addr)
	if h0.Config.Hash != config.Hash([]byte(good)) || h0.Config.Generation != 1 || len(h0.Plugins) != 1 {
		t.Fatalf("health at start: %+v", h0)
	}
	pid0 := h0.Plugins[0].PID

	broken := []struct{ name, cfg, want string }{
		{"syntax error", strings.Replace(good, `event "ping" {`, `event "ping" {{`, 1), "c.hcl:"},
		{"unknown plugin", good + "\nsharding \"nosuch\" {}\n", "Plugin failed to start"},
		{"plugin refuses its block", strings.Replace(good, `secret   = env("TEST_JWT_SECRET")`, `secret   = ""`, 1), "Invalid value for secret"},
		{"listen changed", strings.Replace(good, `listen     = env("LISTEN_ADDR")`, `listen     = "127.0.0.1:1"`, 1), "Cannot change server.listen at run time"},
	}
	for i, b := range broken {
		write(b.cfg)
		code, body := postReload(t, addr)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, b.want) {
			t.Fatalf("%s: %d %s", b.name, code, body)
		}
		h := getHealth(t, addr)
		if h.Config.Hash != h0.Config.Hash || h.Config.Reloads["failed"] != i+1 || h.Config.LastError == nil ||
			!strings.Contains(h.Config.LastError.Message, b.want) {
			t.Fatalf("%s: health %+v", b.name, h.Config)
		}
		if got := pingOnce(t, c); got != `42["pong-a"]` {
			t.Fatalf("%s: the old rules no longer serve: %q", b.name, got)
		}
		if len(h.Plugins) != 1 || h.Plugins[0].PID != pid0 {
			t.Fatalf("%s: plugins %+v, want only pid %d", b.name, h.Plugins, pid0)
		}
	}
	if !strings.Contains(srv.Out.String(), `"at":"`+path+`:`) {
		t.Errorf("no log line with the refused config's file:line:col")
	}

	// A good config: the rule is in force at once, the changed auth block
	// runs in a new process, the socket stayed.
	next := reloadConfig(dir, "pong-b", `data_claims = ["sub"]`, "")
	write(next)
	if code, body := postReload(t, addr); code != http.StatusOK {
		t.Fatalf("good config refused: %d %s", code, body)
	}
	if got := pingOnce(t, c); got != `42["pong-b"]` {
		t.Fatalf("after reload: %q", got)
	}
	h := getHealth(t, addr)
	if h.Config.Hash != config.Hash([]byte(next)) || h.Config.LastError != nil || h.Config.Reloads["ok"] != 1 ||
		len(h.Plugins) != 1 || h.Plugins[0].PID == pid0 {
		t.Fatalf("health after the good reload: %+v", h)
	}
	pid1 := h.Plugins[0].PID
	if c2, reply := connectWS(t, addr, `{"token":"`+tok+`"}`); !strings.HasPrefix(reply, "40") {
		t.Fatalf("connect through the new auth process: %q", reply)
	} else {
		c2.Close()
	}
	// The old process is stopped after its calls' grace (call_timeout).
	if !testkit.Poll(5*time.Second, func() bool { return syscall.Kill(pid0, 0) != nil }) {
		t.Errorf("the replaced auth plugin (pid %d) still runs", pid0)
	}

	// SIGHUP, and a change that leaves the auth block as it is: same process.
	third := reloadConfig(dir, "pong-c", `data_claims = ["sub"]`, `log_level = "debug"`)
	write(third)
	_ = srv.Signal(syscall.SIGHUP)
	testkit.WaitFor(t, 5*time.Second, "SIGHUP to reload", func() bool { return getHealth(t, addr).Config.Hash == config.Hash([]byte(third)) })
	if got := pingOnce(t, c); got != `42["pong-c"]` {
		t.Fatalf("after SIGHUP: %q", got)
	}
	if h := getHealth(t, addr); len(h.Plugins) != 1 || h.Plugins[0].PID != pid1 {
		t.Fatalf("an unchanged auth block got a new process: %+v (was %d)", h.Plugins, pid1)
	}
	// Log lines after the reload carry the new hash; debug is on.
	if !strings.Contains(srv.Out.String(), `"config_hash":"`+config.Hash([]byte(third))+`"`) {
		t.Errorf("no log line with the new config hash")
	}

	// The CLI: `reload --config FILE` reaches the instance through FILE's
	// listen address and API token.
	write(good)
	var out, errb bytes.Buffer
	cmd := testkit.Command(buildBinary(t), []string{"LISTEN_ADDR=" + addr}, "reload", "--config", path)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "reloaded: config "+config.Hash([]byte(good))) {
		t.Fatalf("reload command: %v %q %q", err, out.String(), errb.String())
	}
	if got := pingOnce(t, c); got != `42["pong-a"]` {
		t.Fatalf("after the reload command: %q", got)
	}
}

// validate --against says what a running instance would refuse.
func TestValidateAgainstTheRunningConfig(t *testing.T) {
	dir := t.TempDir()
	running := filepath.Join(dir, "running.hcl")
	next := filepath.Join(dir, "next.hcl")
	base := "server {\n  listen = \"127.0.0.1:8081\"\n}\nnamespace \"/\" {\n  event \"a\" {\n    reply { event = \"b\" }\n  }\n}\n"
	_ = os.WriteFile(running, []byte(base), 0o644)
	_ = os.WriteFile(next, []byte(strings.Replace(base, `reply { event = "b" }`, `reply { event = "c" }`, 1)), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"validate", "--config", next, "--against", running}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "can reload it") {
		t.Fatalf("a rule change: %d %q %q", code, out.String(), errb.String())
	}
	_ = os.WriteFile(next, []byte(strings.Replace(base, "8081", "8082", 1)), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"validate", "--config", next, "--against", running}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), next+":2:3: Error: Cannot change server.listen at run time") {
		t.Fatalf("a listen change: %d %q %q", code, out.String(), errb.String())
	}
}

func adapterReloadConfig(pluginDir, requestsTimeout string) string {
	return `
server {
  listen     = env("LISTEN_ADDR")
  plugin_dir = "` + pluginDir + `"
  api {
    token = "` + testAPIToken + `"
  }
  limits {
    packet_rate  = 2000 # the senders send 500 a second
    packet_burst = 2000
  }
}
adapter "redis" {
  url              = env("REDIS_URL")
  requests_timeout = "` + requestsTimeout + `"
}
namespace "/" {
  event "join" {
    join {
      room  = args[0]
      allow = ["*"]
    }
    ack = [true]
  }
  event "msg" {
    broadcast {
      to            = "r"
      except_sender = true
    }
  }
}
`
}

// seqReader collects the numbered messages a client receives, by sender.
type seqReader struct {
	mu  sync.Mutex
	got map[string][]int
}

func readSeqs(c *websocket.Conn) *seqReader {
	r := &seqReader{got: map[string][]int{}}
	go func() {
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			var m struct {
				From string
				S    int
			}
			if s := string(b); strings.HasPrefix(s, `42["msg",`) && json.Unmarshal([]byte(s[len(`42["msg",`):len(s)-1]), &m) == nil {
				r.mu.Lock()
				r.got[m.From] = append(r.got[m.From], m.S)
				r.mu.Unlock()
			}
		}
	}()
	return r
}

// The adapter block changed under cross-instance traffic: the instance
// hands over to a new adapter process (subscribed before the old one
// stops) and no broadcast is lost or duplicated, either way.
func TestReloadHandsTheAdapterOverWithoutLoss(t *testing.T) {
	redis := testkit.StartRedis(t)
	dir := t.TempDir()
	buildPlugin(t, dir, "adapter-redis")
	bin := buildBinary(t)
	type inst struct {
		addr, path string
		srv        *testkit.Process
	}
	start := func(name string) *inst {
		in := &inst{addr: testkit.FreeAddr(t), path: filepath.Join(t.TempDir(), name+".hcl")}
		_ = os.WriteFile(in.path, []byte(adapterReloadConfig(dir, "5s")), 0o644)
		in.srv = testkit.Start(t, testkit.Command(bin, []string{"LISTEN_ADDR=" + in.addr, "REDIS_URL=" + redis.URL()}, "run", "--config", in.path))
		testkit.WaitHTTP(t, 10*time.Second, "http://"+in.addr+"/ready")
		return in
	}
	a, b := start("a"), start("b")
	defer stopServer(t, a.srv)
	defer stopServer(t, b.srv)
	member := func(in *inst) *websocket.Conn {
		c, reply := connectWS(t, in.addr, `{}`)
		if !strings.HasPrefix(reply, "40") {
			t.Fatalf("connect: %q", reply)
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(`421["join","r"]`))
		if got := read(t, c); got != `431[true]` {
			t.Fatalf("join: %q", got)
		}
		return c
	}
	sa, sb := member(a), member(b)
	ra, rb := readSeqs(member(a)), readSeqs(member(b))
	time.Sleep(200 * time.Millisecond) // the room reached both adapters

	var sent [2]int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range []*websocket.Conn{sa, sb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := []string{"a", "b"}[i]
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				if c.WriteMessage(websocket.TextMessage, []byte(`42["msg",{"from":"`+from+`","s":`+strconv.Itoa(n)+`}]`)) != nil {
					return
				}
				sent[i] = n
			}
		}()
	}
	for i, in := range []*inst{b, a, b, a} {
		time.Sleep(300 * time.Millisecond)
		timeout := []string{"6s", "6s", "5s", "5s"}[i]
		_ = os.WriteFile(in.path, []byte(adapterReloadConfig(dir, timeout)), 0o644)
		code, body := postReload(t, in.addr)
		if code != http.StatusOK || !strings.Contains(body, `"plugins_started":["adapter.redis"]`) {
			t.Fatalf("reload %d: %d %s", i, code, body)
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	// The last ones arrive: wait until every receiver has as many as were
	// sent (a loss still shows after the wait), at most 10 s on a busy machine.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		caught := true
		for _, r := range []*seqReader{ra, rb} {
			r.mu.Lock()
			for i, from := range []string{"a", "b"} {
				caught = caught && len(r.got[from]) >= sent[i]
			}
			r.mu.Unlock()
		}
		if caught {
			break
		}
	}

	for _, in := range []*inst{a, b} {
		n := 0
		for _, l := range in.srv.Out.Lines() {
			if strings.Contains(l, `"msg":"adapter handed over to the new plugin process"`) {
				n++
				t.Log(l)
			}
		}
		if n != 2 {
			t.Errorf("%s: %d handovers logged, want 2", in.addr, n)
		}
	}
	for name, r := range map[string]*seqReader{"a": ra, "b": rb} {
		r.mu.Lock()
		for i, from := range []string{"a", "b"} {
			got := r.got[from]
			seen := map[int]bool{}
			dup := 0
			for _, s := range got {
				if seen[s] {
					dup++
				}
				seen[s] = true
			}
			lost := 0
			for s := 1; s <= sent[i]; s++ {
				if !seen[s] {
					lost++
				}
			}
			t.Logf("receiver on %s, from %s: sent %d, received %d, lost %d, duplicated %d", name, from, sent[i], len(got), lost, dup)
			if lost != 0 || dup != 0 || sent[i] < 300 {
				t.Errorf("receiver on %s, from %s: sent %d, lost %d, duplicated %d", name, from, sent[i], lost, dup)
			}
		}
		r.mu.Unlock()
	}
}
