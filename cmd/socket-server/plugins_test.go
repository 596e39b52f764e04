package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// buildPlugin builds plugins/<name> into dir/<name>.
func buildPlugin(t testing.TB, dir, name string) string {
	t.Helper()
	return testkit.Install(t, "./plugins/"+name, filepath.Join(dir, name))
}

func token(t *testing.T, claims jwt.MapClaims, secret string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jwtConfig(pluginDir string) string {
	return `
server {
  listen     = env("LISTEN_ADDR")
  plugin_dir = "` + pluginDir + `"
  api {
    token = "` + testAPIToken + `"
  }
}
auth "jwt" {
  secret      = env("TEST_JWT_SECRET")
  audience    = "chat"
  rooms_claim = "rooms"
  data_claims = ["sub", "role"]
}
namespace "/" {
  on_connect {
    emit "hello" { args = [user, data.role] }
  }
  event "where" {
    ack = [user]
  }
}
`
}

// connectWS opens a WebSocket and sends CONNECT with auth; it returns the
// reply packet (40... or 44...).
func connectWS(t *testing.T, addr, auth string) (*websocket.Conn, string) {
	t.Helper()
	c := dial(t, "ws://"+addr+"/socket.io/?EIO=4&transport=websocket")
	read(t, c)
	_ = c.WriteMessage(websocket.TextMessage, []byte("40"+auth))
	return c, read(t, c)
}

// startJWTServer runs the server with the auth-jwt plugin and jwtConfig,
// secret "s3cr3t".
func startJWTServer(t *testing.T) (*testkit.Process, string) {
	t.Helper()
	dir := t.TempDir()
	buildPlugin(t, dir, "auth-jwt")
	t.Setenv("TEST_JWT_SECRET", "s3cr3t")
	return startServer(t, buildBinary(t), jwtConfig(dir))
}

func TestJWTPluginThroughTheCore(t *testing.T) {
	srv, addr := startJWTServer(t)
	defer stopServer(t, srv)
	now := time.Now()
	good := jwt.MapClaims{"sub": "ann", "aud": "chat", "role": "admin", "rooms": []string{"team:red"}, "exp": now.Add(time.Hour).Unix()}

	c, reply := connectWS(t, addr, `{"token":"`+token(t, good, "s3cr3t")+`"}`)
	if !strings.HasPrefix(reply, `40{"sid":"`) {
		t.Fatalf("valid token: %q", reply)
	}
	if got := read(t, c); got != `42["hello","ann","admin"]` {
		t.Fatalf("claims on the socket: %q", got)
	}

	bad := func(name string, claims jwt.MapClaims, secret, wantMsg string) {
		t.Run(name, func(t *testing.T) {
			auth := `{}`
			if claims != nil {
				auth = `{"token":"` + token(t, claims, secret) + `"}`
			}
			_, reply := connectWS(t, addr, auth)
			if !strings.HasPrefix(reply, `44{"message":"`+wantMsg+`"`) {
				t.Fatalf("got %q, want message %q", reply, wantMsg)
			}
		})
	}
	expired := jwt.MapClaims{"sub": "ann", "aud": "chat", "exp": now.Add(-time.Hour).Unix()}
	wrongAud := jwt.MapClaims{"sub": "ann", "aud": "other", "exp": now.Add(time.Hour).Unix()}
	bad("expired", expired, "s3cr3t", "invalid token: token has expired")
	bad("wrong signature", good, "not-the-secret", "invalid token: signature is invalid")
	bad("wrong audience", wrongAud, "s3cr3t", "invalid token: wrong audience")
	bad("missing", nil, "", "authentication required: no token")
}

const testAPIToken = "test-api-token-0123456789"

// pluginPID reads the plugin's pid from /health, asking with the API token
// (without it /health keeps pids to itself).
func pluginPID(t *testing.T, addr string) int {
	t.Helper()
	return healthPluginPID(t, addr, testAPIToken)
}

func healthPluginPID(t *testing.T, addr, apiToken string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/health", nil)
	if err != nil {
		t.Fatal(err)
	}
	if apiToken != "" {
		req.Header.Set("Authorization", "Bearer "+apiToken)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var h struct {
		Plugins []struct {
			Up       bool
			PID      int
			Restarts int
		}
	}
	_ = json.NewDecoder(res.Body).Decode(&h)
	if len(h.Plugins) != 1 || !h.Plugins[0].Up {
		return 0
	}
	return h.Plugins[0].PID
}

// /health is public, but plugin pids (and their errors, which name
// addresses) only go to a caller with the API token.
func TestHealthShowsPluginPIDsOnlyWithTheAPIToken(t *testing.T) {
	srv, addr := startJWTServer(t)
	defer stopServer(t, srv)
	if pid := healthPluginPID(t, addr, ""); pid != 0 {
		t.Errorf("/health without a token shows plugin pid %d", pid)
	}
	if pid := healthPluginPID(t, addr, "wrong-token-0123456789"); pid != 0 {
		t.Errorf("/health with a wrong token shows plugin pid %d", pid)
	}
	if pid := healthPluginPID(t, addr, testAPIToken); pid <= 0 {
		t.Errorf("/health with the API token shows no plugin pid")
	}
}

// TestAuthPluginKilledWhileClientsConnect: kill -9 of the auth plugin does
// not crash the core; handshakes meanwhile are refused with "authentication
// unavailable", the plugin is back within 2 s, and connects succeed again.
func TestAuthPluginKilledWhileClientsConnect(t *testing.T) {
	srv, addr := startJWTServer(t)
	defer stopServer(t, srv)
	tok := token(t, jwt.MapClaims{"sub": "ann", "aud": "chat", "role": "user", "exp": time.Now().Add(time.Hour).Unix()}, "s3cr3t")
	kept, reply := connectWS(t, addr, `{"token":"`+tok+`"}`)
	if !strings.HasPrefix(reply, "40") {
		t.Fatalf("first connect %q", reply)
	}
	read(t, kept)

	pid := pluginPID(t, addr)
	if pid == 0 {
		t.Fatal("no plugin pid in /health")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// /ready names the plugin while it is down.
	sawDown := false
	for time.Since(killed) < time.Second && !sawDown {
		res, err := http.Get("http://" + addr + "/ready")
		if err == nil {
			b := new(bytes.Buffer)
			_, _ = b.ReadFrom(res.Body)
			res.Body.Close()
			sawDown = res.StatusCode == 503 && strings.Contains(b.String(), `plugin auth \"jwt\" down`)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !sawDown {
		t.Error("/ready never reported the auth plugin down")
	}
	var unavailable, okAfter int
	var backAfter time.Duration
	for time.Since(killed) < 5*time.Second {
		c, reply := connectWS(t, addr, `{"token":"`+tok+`"}`)
		c.Close()
		switch {
		case strings.HasPrefix(reply, `44{"message":"authentication unavailable"`):
			unavailable++
		case strings.HasPrefix(reply, "40"):
			okAfter++
			if backAfter == 0 {
				backAfter = time.Since(killed)
			}
		default:
			t.Fatalf("unexpected reply %q", reply)
		}
		if okAfter >= 5 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if okAfter < 5 || backAfter > 2*time.Second {
		t.Fatalf("plugin not back within 2 s: %d ok, first after %v", okAfter, backAfter)
	}
	t.Logf("after kill -9: %d handshakes refused as unavailable, connects succeed again after %v", unavailable, backAfter)
	// The socket connected before the kill is still there.
	_ = kept.WriteMessage(websocket.TextMessage, []byte(`421["where"]`))
	if got := read(t, kept); got != `431["ann"]` {
		t.Fatalf("socket connected before the kill: %q", got)
	}
	if srv.Exited() {
		t.Fatal("core exited")
	}
}

func TestValidateReportsPluginProblems(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	plugin := buildPlugin(t, dir, "auth-jwt")
	sum := sha256.New()
	b, _ := os.ReadFile(plugin)
	sum.Write(b)
	goodSum := hex.EncodeToString(sum.Sum(nil))
	t.Setenv("TEST_JWT_SECRET", "x")
	for _, tc := range []struct {
		name, block string
		want        []string
	}{
		{"ok", `auth "jwt" {
  sha256 = "` + goodSum + `"
  secret = "x"
}`, nil},
		{"unknown attribute", `auth "jwt" {
  secret   = "x"
  audiense = "chat"
}`, []string{":7:3", `An argument named "audiense" is not expected here`}},
		{"missing binary", `auth "nope" {}`, []string{":5:1", "auth-nope", "not found"}},
		{"wrong checksum", `auth "jwt" {
  sha256 = "` + strings.Repeat("0", 64) + `"
  secret = "x"
}`, []string{":5:1", "sha256"}},
		{"not executable", `auth "jwt" {
  command = "` + filepath.Join(dir, "plain.txt") + `"
  secret  = "x"
}`, []string{":5:1", "not executable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.WriteFile(filepath.Join(dir, "plain.txt"), []byte("hello"), 0o644)
			cfg := filepath.Join(t.TempDir(), "c.hcl")
			src := "server {\n  plugin_dir = \"" + dir + "\"\n}\n\n" + tc.block + "\n"
			_ = os.WriteFile(cfg, []byte(src), 0o644)
			cmd := exec.Command(bin, "validate", "--config", cfg)
			var stderr, stdout bytes.Buffer
			cmd.Stderr, cmd.Stdout = &stderr, &stdout
			err := cmd.Run()
			if tc.want == nil {
				if err != nil || !strings.Contains(stdout.String(), "1 plugins") {
					t.Fatalf("valid config refused: %v\n%s%s", err, stdout.String(), stderr.String())
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted:\n%s", stdout.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

// TestNoOrphansAfterCoreKill: kill -9 of the core leaves no plugin behind.
func TestNoOrphansAfterCoreKill(t *testing.T) {
	srv, addr := startJWTServer(t)
	pid := pluginPID(t, addr)
	if pid == 0 {
		t.Fatal("no plugin pid")
	}
	// The core alone, not its process group: the plugin must go by itself.
	_ = srv.Signal(syscall.SIGKILL)
	srv.WaitExit(t, 5*time.Second)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("plugin %d still running after the core was killed", pid)
}

// TestCustomAuthPluginsThroughTheCore runs the examples' API-key plugins,
// in Go and in Node.js, behind the real core.
func TestCustomAuthPluginsThroughTheCore(t *testing.T) {
	bin := buildBinary(t)
	root := testkit.ModuleRoot(t)
	// A Go module of its own, as an outside author's plugin would be.
	goPlugin := plugintest.BuildIn(t, filepath.Join(root, "examples/auth-custom-go"), ".")
	nodeDir := filepath.Join(root, "examples/auth-custom-node")
	testkit.Need(t, "node")
	plugintest.NeedFile(t, filepath.Join(nodeDir, "node_modules/@grpc/grpc-js"), "examples/auth-custom-node's npm packages", "run `make e2e-deps` (make test does)")
	for _, tc := range []struct{ name, command, keys string }{
		{"go", goPlugin, filepath.Join(root, "examples/auth-custom-go/keys.txt")},
		{"node", filepath.Join(nodeDir, "auth-apikey-node"), filepath.Join(nodeDir, "keys.txt")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := `
server { listen = env("LISTEN_ADDR") }
auth "apikey" {
  command   = "` + tc.command + `"
  keys_file = "` + tc.keys + `"
}
namespace "/" {
  on_connect {
    emit "me" { args = [user] }
  }
}
`
			srv, addr := startServer(t, bin, cfg)
			defer stopServer(t, srv)
			c, reply := connectWS(t, addr, `{"key":"demo-key-alice"}`)
			if !strings.HasPrefix(reply, `40{"sid":"`) {
				t.Fatalf("valid key: %q", reply)
			}
			if got := read(t, c); got != `42["me","alice"]` {
				t.Fatalf("user on the socket: %q", got)
			}
			if _, reply := connectWS(t, addr, `{"key":"stolen"}`); !strings.HasPrefix(reply, `44{"message":"invalid key"`) {
				t.Fatalf("wrong key: %q", reply)
			}
			if _, reply := connectWS(t, addr, ``); !strings.HasPrefix(reply, `44{"message":"authentication required: no key"`) {
				t.Fatalf("no key: %q", reply)
			}
		})
	}
}

// TestShardingAndMetricsPluginsThroughTheCore: the sharding-hash plugin
// sends users of other shards away after JWT auth; a metrics plugin renders
// the core's counters at /metrics.
func TestShardingAndMetricsPluginsThroughTheCore(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	buildPlugin(t, dir, "auth-jwt")
	buildPlugin(t, dir, "sharding-hash")
	metricsBin := testkit.Install(t, "github.com/socketfleet/socketfleet/sdk/internal/testplugin", filepath.Join(dir, "metrics-test"))
	t.Setenv("TEST_JWT_SECRET", "s3cr3t")
	t.Setenv("TESTPLUGIN_KIND", "metrics")
	cfg := strings.Replace(jwtConfig(dir), `namespace "/" {`, `sharding "hash" {
  shards = 4
  shard  = 2
  urls   = ["wss://s0.example", "wss://s1.example", "wss://s2.example", "wss://s3.example"]
}
metrics "test" {
  command = "`+metricsBin+`"
}
namespace "/" {`, 1)
	srv, addr := startServer(t, bin, cfg)
	defer stopServer(t, srv)
	claims := func(user string) string {
		return `{"token":"` + token(t, jwt.MapClaims{"sub": user, "aud": "chat", "role": "r", "exp": time.Now().Add(time.Hour).Unix()}, "s3cr3t") + `"}`
	}
	// md5 of "alice" puts her on shard 2 of 4 (this instance); "bob" on 0.
	if _, reply := connectWS(t, addr, claims("alice")); !strings.HasPrefix(reply, "40") {
		t.Fatalf("alice: %q", reply)
	}
	if _, reply := connectWS(t, addr, claims("bob")); reply != `44{"message":"Please connect to shard 0","data":{"shard":0,"url":"wss://s0.example"}}` {
		t.Fatalf("bob: %q", reply)
	}
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := new(bytes.Buffer)
	_, _ = body.ReadFrom(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(body.String(), "socket_sockets_active 1\n") {
		t.Fatalf("/metrics: %d\n%s", res.StatusCode, body)
	}
}

// The CONNECT payload's secrets stay out of the backend API and the rules:
// the JWT plugin's token (its decision names it) and what api.redact_auth
// names are dropped from what the socket keeps; the rest is there.
func TestAPIHidesAuthSecrets(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	buildPlugin(t, dir, "auth-jwt")
	t.Setenv("TEST_JWT_SECRET", "s3cr3t")
	const apiToken = "0123456789abcdef0123"
	srv, addr := startServer(t, bin, `
server {
  listen     = env("LISTEN_ADDR")
  plugin_dir = "`+dir+`"
  api {
    token       = "`+apiToken+`"
    redact_auth = ["password"]
  }
}
auth "jwt" {
  secret = env("TEST_JWT_SECRET")
}
namespace "/" {
  on_connect {
    emit "auth" { args = [auth] }
  }
}
`)
	defer stopServer(t, srv)
	tok := token(t, jwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix()}, "s3cr3t")
	c, reply := connectWS(t, addr, `{"token":"`+tok+`","password":"hunter2","room":"lobby"}`)
	if !strings.HasPrefix(reply, `40{"sid":"`) {
		t.Fatalf("connect: %q", reply)
	}
	if got := read(t, c); got != `42["auth",{"room":"lobby"}]` {
		t.Errorf("rules see auth as %s, want the redacted object", got)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/sockets", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(res.Body)
	got := body.String()
	if res.StatusCode != 200 || !strings.Contains(got, `"auth":{"room":"lobby"}`) {
		t.Fatalf("GET /api/v1/sockets: %d %s", res.StatusCode, got)
	}
	for _, secret := range []string{tok, "hunter2", `"token"`, `"password"`} {
		if strings.Contains(got, secret) {
			t.Errorf("the API shows %q: %s", secret, got)
		}
	}
}
