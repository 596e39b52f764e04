// Package plugintest is the test kit for socketfleet plugins: it runs a
// plugin behind the real gRPC boundary, in-process or as a subprocess, and
// checks that it keeps its kind's contract.
//
// A typical test for a third-party auth plugin:
//
//	func TestContract(t *testing.T) {
//		p := plugintest.InProcess(t, newPlugin())
//		plugintest.CheckContract(t, p, plugintest.Options{Config: sdk.Config(`{"secret":"s3cret"}`)})
//		plugintest.CheckAuth(t, p.(sdk.Authenticator),
//			plugintest.AuthCase{Name: "no token", Request: sdk.AuthRequest{Namespace: "/", Auth: []byte(`{}`)}},
//		)
//	}
//
// and the same checks against the built binary:
// plugintest.Subprocess(t, plugintest.Build(t, "."), sdk.KindAuth), where
// Build compiles the package once per test process.
//
// Behind the real server (socket-server, found by NeedServer: the path in
// $SOCKETFLEET_SERVER, else on PATH), for a plugin given as a Plugin (the
// Go package to build, its kind and name):
//
//	plugin := plugintest.Plugin{Package: ".", Kind: sdk.KindAuth, Name: "token"}
//	plugintest.CheckConfig(t, plugin, `secret = "s3cret"`) // the host's schema check and Configure
//	srv := plugintest.StartServer(t, plugin, `secret = "s3cret"`, "")
//	srv.Connect(t, `{"token":"s3cret"}`)                 // a polling Socket.IO client
//	if e := srv.Refused(t, `{}`); e.Message != "no token" { ... }
//
// A test that needs an outside program or file (Node.js, a database) asks
// for it with NeedTool or NeedFile: when it is missing the test is skipped
// with the install hint given, and fails when the environment has CI=true,
// so that CI cannot pass by skipping.
package plugintest

import (
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/internal/inproc"
)

// InProcess serves p over an in-memory gRPC connection and returns the
// host's client for it: a value implementing p's kind interface (assert it
// to sdk.Authenticator, sdk.Adapter, ...) whose every call crosses the same
// protobuf services and shims as with a real plugin process. The connection
// closes when the test ends. It fails the test if p's kind cannot be
// determined (see sdk.KindOf).
func InProcess(t testing.TB, p sdk.Plugin) sdk.Plugin {
	t.Helper()
	c, err := inproc.Connect(p)
	if err != nil {
		t.Fatalf("plugintest: serve %T in-process: %v", p, err)
	}
	t.Cleanup(c.Close)
	return c.Client
}

// Subprocess launches the plugin binary at path as the host does (go-plugin,
// gRPC only, AutoMTLS), dispenses kind and returns its client. The plugin's
// stderr and go-plugin's log go to t.Log. cleanup kills the process; it also
// runs when the test ends, so calling it is optional. The process inherits
// the test's environment.
func Subprocess(t testing.TB, path string, kind sdk.Kind) (p sdk.Plugin, cleanup func()) {
	t.Helper()
	logw := &testWriter{t: t}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake(),
		Plugins:          sdk.HostPlugins(),
		Cmd:              exec.Command(path),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     30 * time.Second,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: logw, Level: hclog.Debug}),
		SyncStdout:       logw,
		SyncStderr:       logw,
	})
	var once sync.Once
	cleanup = func() {
		once.Do(func() {
			client.Kill()
			logw.stop()
		})
	}
	t.Cleanup(cleanup)
	rpc, err := client.Client()
	if err != nil {
		cleanup()
		t.Fatalf("plugintest: start plugin %s: %v", path, err)
	}
	raw, err := rpc.Dispense(string(kind))
	if err != nil {
		cleanup()
		t.Fatalf("plugintest: dispense %s from %s: %v", kind, path, err)
	}
	p = raw.(sdk.Plugin)
	if got := p.Info().Kind; got != kind {
		cleanup()
		t.Fatalf("plugintest: %s is a %q plugin, want %q", path, got, kind)
	}
	return p, cleanup
}

// testWriter sends lines to t.Log until stopped (t.Log after the test ends
// panics).
type testWriter struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}
