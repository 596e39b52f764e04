package pluginhost_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/sdk"
)

// binDir holds the test plugins, built once by TestMain:
// auth-echo, adapter-loop, logsink-collect, auth-badproto (reports protocol
// 99 in Info), handshake-mismatch and not-a-plugin (shell scripts).
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := 1
	if err := buildPlugins(dir); err != nil {
		fmt.Fprintln(os.Stderr, "building test plugins:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildPlugins(dir string) error {
	builds := []struct{ out, pkg, ldflags string }{
		{"auth-echo", "./internal/testplugins/authecho", ""},
		{"adapter-loop", "./internal/testplugins/adapterloop", ""},
		{"logsink-collect", "./internal/testplugins/logcollect", ""},
		{"auth-badproto", "./internal/testplugins/authecho", "-X main.proto=99"},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(builds))
	for i, b := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"build", "-o", filepath.Join(dir, b.out)}
			if b.ldflags != "" {
				args = append(args, "-ldflags", b.ldflags)
			}
			cmd := exec.Command("go", append(args, b.pkg)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	scripts := map[string]string{
		// Speaks go-plugin's handshake line, with another app protocol version.
		"handshake-mismatch": "#!/bin/sh\necho '1|99|unix|/nonexistent.sock|grpc'\nexec sleep 5\n",
		"not-a-plugin":       "#!/bin/sh\necho 'hello, I am not a plugin'\nexit 3\n",
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// newHost returns a host logging into a test hook, closed at cleanup.
func newHost(t *testing.T, opts pluginhost.Options) (*pluginhost.Host, *test.Hook) {
	t.Helper()
	logger, hook := test.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	if testing.Verbose() {
		logger.SetOutput(os.Stderr)
	}
	opts.Log = logrus.NewEntry(logger)
	h := pluginhost.New(opts)
	t.Cleanup(h.Close)
	return h, hook
}

func launch(t *testing.T, h *pluginhost.Host, spec pluginhost.Spec) *pluginhost.Plugin {
	t.Helper()
	if spec.Dir == "" && spec.Command == "" {
		spec.Dir = binDir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := h.Launch(ctx, spec)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	return p
}

// eventually polls cond every 5ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie answers kill -0 too: look at its state.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func hasLog(hook *test.Hook, match func(*logrus.Entry) bool) bool {
	for _, e := range hook.AllEntries() {
		if match(e) {
			return true
		}
	}
	return false
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var _ = sdk.ProtocolVersion

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func renameFile(from, to string) error { return os.Rename(from, to) }
