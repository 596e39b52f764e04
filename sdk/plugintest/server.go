package plugintest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

// ServerEnv names the environment variable that gives the socket-server
// binary to CheckConfig, ValidateConfig and StartServer.
const ServerEnv = "SOCKETFLEET_SERVER"

// serverHint says how to get a server binary when none is found.
const serverHint = "build it (`make build` in a socketfleet checkout makes bin/socket-server) and set " +
	ServerEnv + " to its path, or put socket-server on PATH"

// NeedServer returns the socket-server binary the tests run, by one rule:
// the path in $SOCKETFLEET_SERVER if set (it must exist: a wrong path fails
// the test), else socket-server on PATH. When neither is there the test
// ends through Unavailable: skipped on a developer's machine, failed with
// CI=true.
func NeedServer(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(ServerEnv); p != "" {
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			t.Fatalf("plugintest: %s=%s is not a socket-server binary (%v): %s", ServerEnv, p, err, serverHint)
		}
		return p
	}
	p, err := exec.LookPath("socket-server")
	if err != nil {
		Unavailable(t, "socket-server ($"+ServerEnv+" unset, none on PATH)", serverHint)
	}
	return p
}

// Plugin is a plugin as its author has it: a Go package to build, and the
// block that selects it in config.hcl (`<Kind> "<Name>" { ... }`, the kind
// and name its Info reports).
type Plugin struct {
	// Package is the Go package of the plugin's main, as `go build` names
	// it relative to the test's working directory: "." for the plugin under
	// test. It is built once per test process (see Build).
	Package string
	Kind    sdk.Kind
	Name    string
}

// block is the plugin's config block for binary bin with the author's
// snippet (the plugin's own attributes) inside.
func (p Plugin) block(bin, snippet string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q {\n  command = %s\n", p.Kind, p.Name, strconv.Quote(bin))
	for _, l := range strings.Split(strings.Trim(snippet, "\n"), "\n") {
		b.WriteString(strings.TrimRight("  "+l, " ") + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func (p Plugin) check(t testing.TB) {
	t.Helper()
	if p.Package == "" || p.Kind == "" || p.Name == "" {
		t.Fatalf("plugintest: Plugin %+v: Package, Kind and Name are all needed", p)
	}
}

// numbered returns text with line numbers, to read diagnostics against.
func numbered(text string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(&b, "%4d | %s\n", i+1, l)
	}
	return b.String()
}

// ValidateConfig runs `socket-server validate` (NeedServer) on a config
// holding p's block, with snippet (the plugin's own attributes, HCL)
// inside it, and a `namespace "/" {}`. The server launches the plugin,
// decodes the block against the schema the plugin declares and calls its
// Configure, exactly as at start-up. It returns nil when the server
// accepts the config, else a *ConfigError carrying the server's
// diagnostics and the config they point into. The server, and the plugin
// it launches, inherit the test's environment.
func ValidateConfig(t testing.TB, p Plugin, snippet string) error {
	t.Helper()
	server := NeedServer(t)
	p.check(t)
	text := p.block(Build(t, p.Package), snippet) + "namespace \"/\" {}\n"
	dir := t.TempDir()
	path := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(server, "validate", "--config", path)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return &ConfigError{Diagnostics: strings.TrimRight(out.String(), "\n"), Config: text}
	default:
		t.Fatalf("plugintest: %s validate: %v\n%s", server, err, out.String())
		return nil
	}
}

// ConfigError is ValidateConfig's error: the server refused the config.
type ConfigError struct {
	Diagnostics string // what socket-server validate printed, with file:line:col
	Config      string // the config file it checked
}

func (e *ConfigError) Error() string {
	return "socket-server validate refused the config:\n" + e.Diagnostics + "\nthe config:\n" + numbered(e.Config)
}

// CheckConfig fails the test unless the server accepts snippet as p's
// config block (see ValidateConfig), showing the server's diagnostics.
func CheckConfig(t testing.TB, p Plugin, snippet string) {
	t.Helper()
	if err := ValidateConfig(t, p, snippet); err != nil {
		t.Fatalf("plugintest: CheckConfig(%s %q): %v", p.Kind, p.Name, err)
	}
}

// Server is a socket-server started by StartServer.
type Server struct {
	// Addr is where it listens: "127.0.0.1:port".
	Addr string
	// Config is the config file's text.
	Config string

	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

// StartServer starts the real socket-server (NeedServer) on a free
// loopback port, with p's block holding snippet, and waits until it
// answers. rest is the rest of the config: namespaces and their rules, and
// other top-level blocks except `server` (StartServer writes that one);
// when rest is "" it is `namespace "/" {}`. The server and its plugin
// inherit the test's environment. The server stops when the test ends, and
// its output is logged if the test failed.
func StartServer(t testing.TB, p Plugin, snippet, rest string) *Server {
	t.Helper()
	server := NeedServer(t)
	p.check(t)
	if rest == "" {
		rest = "namespace \"/\" {}\n"
	}
	addr := freeAddr(t)
	text := fmt.Sprintf("server {\n  listen = %q\n}\n", addr) + p.block(Build(t, p.Package), snippet) + rest
	dir := t.TempDir()
	path := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: addr, Config: text, out: &lockedBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(server, "run", "--config", path)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.WaitDelay = 2 * time.Second // Wait returns even if a plugin keeps the pipes open
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("plugintest: start %s: %v", server, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("plugintest: socket-server output:\n%s\nconfig:\n%s", s.out.String(), numbered(text))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	probe := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-s.done:
			t.Fatalf("plugintest: socket-server exited at start-up (%v); its output and config follow", s.cmd.ProcessState)
		default:
		}
		if resp, err := probe.Get("http://" + addr + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugintest: socket-server not answering on %s after 30 s; its output and config follow", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Output is what the server has written so far (its log).
func (s *Server) Output() string { return s.out.String() }

// stop sends SIGTERM (the drain), then kills the server after 5 s; its
// plugins exit on their own once it is gone.
func (s *Server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		_ = s.cmd.Process.Kill()
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer is written by a process while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
