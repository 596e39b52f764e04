package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// nodePackages are what the Node interop tests install: the versions of
// test/e2e's lockfile.
var nodePackages = []string{
	"@socket.io/redis-adapter@8.3.0", "@socket.io/redis-emitter@5.1.0",
	"socket.io@4.8.1", "socket.io-client@4.8.4", "redis@4.7.0",
	"@socket.io/redis-streams-adapter@0.3.1",
}

// nodeModules returns a node_modules directory holding nodePackages:
// test/e2e's when it is installed at these versions, else an npm install
// kept under os.TempDir() (keyed by the package list) so that later runs
// skip it. The test is skipped when node or npm is missing.
func nodeModules(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("installs npm packages and starts Node")
	}
	testkit.Need(t, "node", "npm")
	if dir, err := filepath.Abs(filepath.Join("..", "..", "test", "e2e", "node_modules")); err == nil && hasPackages(dir) {
		return dir
	}
	sum := sha256.Sum256([]byte(strings.Join(nodePackages, " ")))
	cache := filepath.Join(os.TempDir(), "socketfleet-adapter-redis-npm-"+hex.EncodeToString(sum[:6]))
	if hasPackages(filepath.Join(cache, "node_modules")) {
		return filepath.Join(cache, "node_modules")
	}
	// Install beside the cache and rename: concurrent runs never see half
	// an install.
	tmp, err := os.MkdirTemp(os.TempDir(), "socketfleet-npm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	args := append([]string{"install", "--no-audit", "--no-fund", "--loglevel=error"}, nodePackages...)
	install := exec.Command("npm", args...)
	install.Dir = tmp
	if out, err := install.CombinedOutput(); err != nil {
		t.Logf("npm install: %v\n%s", err, out)
		plugintest.Unavailable(t, "npm packages "+strings.Join(nodePackages, " "), "run `make e2e-deps` (npm ci in test/e2e), or give npm registry access")
	}
	if err := os.Rename(tmp, cache); err != nil && !hasPackages(filepath.Join(cache, "node_modules")) {
		t.Fatalf("caching the npm install: %v", err)
	}
	if !hasPackages(filepath.Join(cache, "node_modules")) {
		t.Fatalf("npm install in %s does not hold %q", cache, nodePackages)
	}
	return filepath.Join(cache, "node_modules")
}

// hasPackages reports whether dir holds every nodePackages at its version.
func hasPackages(dir string) bool {
	for _, p := range nodePackages {
		i := strings.LastIndex(p, "@")
		name, version := p[:i], p[i+1:]
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name), "package.json"))
		var pkg struct{ Version string }
		if err != nil || json.Unmarshal(b, &pkg) != nil || pkg.Version != version {
			return false
		}
	}
	return true
}

// nodeProc is a running Node script: lines to its stdin, its stdout lines.
type nodeProc struct {
	stdin  io.WriteCloser
	lines  chan string
	stderr *testkit.Buffer
}

// startNode runs script with node_modules and env (e.g. REDIS_URL=...); it
// is stopped (stdin closed, then killed) when the test ends.
func startNode(t *testing.T, modules, script string, env ...string) *nodeProc {
	t.Helper()
	path := filepath.Join(t.TempDir(), "script.js")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", path)
	cmd.Env = append(append(os.Environ(), "NODE_PATH="+modules), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n := &nodeProc{stdin: stdin, lines: make(chan string, 100), stderr: &testkit.Buffer{}}
	cmd.Stderr = n.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			n.lines <- sc.Text()
		}
		close(n.lines)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("node stderr:\n%s", n.stderr.String())
		}
	})
	return n
}

func (n *nodeProc) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(n.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// expect returns the rest of the next line starting with prefix+" ",
// skipping others; it fails on an "error" line.
func (n *nodeProc) expect(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-n.lines:
			if !ok {
				t.Fatalf("node exited while waiting for %q\n%s", prefix, n.stderr.String())
			}
			if strings.HasPrefix(l, "error ") {
				t.Fatalf("node, waiting for %q: %s", prefix, l)
			}
			if rest, ok := strings.CutPrefix(l, prefix+" "); ok {
				return rest
			}
		case <-timeout:
			t.Fatalf("node: no %q line within 20s", prefix)
		}
	}
}
