package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(hostHelperEnv); path != "" {
		runHostHelper(path) // the parent-death test's host process; never returns
	}
	os.Exit(m.Run())
}

// testplugin builds sdk/internal/testplugin once per test process.
func testplugin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a plugin binary")
	}
	return plugintest.Build(t, "./internal/testplugin")
}

// TestServeEachKind launches the test plugin as a subprocess for every kind
// (go-plugin, AutoMTLS) and runs the contract checks over the real process
// boundary.
func TestServeEachKind(t *testing.T) {
	bin := testplugin(t)
	for _, kind := range sdk.Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			t.Setenv("TESTPLUGIN_KIND", string(kind))
			p, cleanup := plugintest.Subprocess(t, bin, kind)
			defer cleanup()
			plugintest.CheckContract(t, p, plugintest.Options{Config: sdk.Config(`{"note":"hi"}`), Echo: kind == sdk.KindAdapter})
			if kind == sdk.KindAuth {
				plugintest.CheckAuth(t, p.(sdk.Authenticator),
					plugintest.AuthCase{Name: "good", Request: sdk.AuthRequest{Namespace: "/", Auth: []byte(`{"token":"good"}`)}, Allow: true, UserID: "u1"},
					plugintest.AuthCase{Name: "bad", Request: sdk.AuthRequest{Namespace: "/", Auth: []byte(`{"token":"bad"}`)}},
					plugintest.AuthCase{Name: "error", Request: sdk.AuthRequest{Namespace: "/", Auth: []byte(`{"token":"error"}`)}, Err: true},
				)
				_, err := p.(sdk.Authenticator).Authenticate(context.Background(), &sdk.AuthRequest{Auth: []byte(`{"token":"error"}`)})
				var pe *sdk.PluginError
				if !errors.As(err, &pe) || pe.Message != "token store unreachable" {
					t.Errorf("error across the process boundary: %v", err)
				}
			}
		})
	}
}

// TestServeRefusesWrongKind: Serve exits 1 with a reason on stderr when the
// plugin implements no kind, or another kind than its Info says.
func TestServeRefusesWrongKind(t *testing.T) {
	bin := testplugin(t)
	for mode, want := range map[string]string{
		"none":     "implements none of the plugin kind interfaces",
		"mismatch": `Info().Kind is "adapter", but it implements the interface of ["auth"]`,
	} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), "TESTPLUGIN_KIND="+mode, sdk.MagicCookieKey+"="+sdk.MagicCookieValue)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1", err)
			}
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), want)
			}
		})
	}
}

// TestSubprocessWrongKind: dispensing a kind the binary does not serve fails.
func TestSubprocessWrongKind(t *testing.T) {
	bin := testplugin(t)
	t.Setenv("TESTPLUGIN_KIND", "auth")
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		plugintest.Subprocess(ft, bin, sdk.KindAdapter)
	}()
	<-done
	if !strings.Contains(ft.msg, `"adapter"`) {
		t.Errorf("Subprocess with the wrong kind: %q", ft.msg)
	}
}

// fatalRecorder records the first Fatalf instead of failing the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtimeGoexit()
}
