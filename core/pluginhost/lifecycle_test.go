package pluginhost_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/sdk"
)

type echoData struct {
	PID       int    `json:"pid"`
	Calls     int    `json:"calls"`
	ConfigDir string `json:"config_dir"`
	Config    struct {
		Greeting string `json:"greeting"`
	} `json:"config"`
}

func authenticate(t *testing.T, a sdk.Authenticator, auth string) (echoData, error) {
	t.Helper()
	d, err := a.Authenticate(context.Background(), &sdk.AuthRequest{Namespace: "/", Auth: json.RawMessage(auth)})
	if err != nil {
		return echoData{}, err
	}
	var out echoData
	if !d.Allow {
		t.Fatalf("refused: %+v", d)
	}
	if err := json.Unmarshal(d.Data, &out); err != nil {
		t.Fatalf("decision data %s: %v", d.Data, err)
	}
	return out, nil
}

func TestLaunchInfoSchemaConfigure(t *testing.T) {
	h, hook := newHost(t, pluginhost.Options{})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo", Where: `auth "echo" block at config.hcl:3:1`})

	if got := p.Info(); got.Kind != sdk.KindAuth || got.Name != "echo" || got.ProtocolVersion != sdk.ProtocolVersion {
		t.Fatalf("Info = %+v", got)
	}
	s := p.Schema()
	if len(s.Attributes) != 2 || s.Attributes[0].Name != "greeting" || !s.Attributes[0].Required || s.Attributes[0].Type != sdk.TypeString {
		t.Fatalf("Schema = %+v", s)
	}
	if err := p.Configure(ctx5(t), sdk.Config(`{"greeting":"hello"}`)); err != nil {
		t.Fatal(err)
	}
	a := p.Authenticator()
	if a.Info().Name != "echo" || len(a.ConfigSchema().Attributes) != 2 {
		t.Fatalf("Authenticator lifecycle: %+v %+v", a.Info(), a.ConfigSchema())
	}
	d, err := authenticate(t, a, `{"say":"hello from the plugin"}`)
	if err != nil {
		t.Fatal(err)
	}
	if d.Config.Greeting != "hello" || d.PID != p.State().PID {
		t.Fatalf("data = %+v, state %+v", d, p.State())
	}

	// A config the plugin refuses names the block and is not remembered.
	err = p.Configure(ctx5(t), sdk.Config(`{"greeting":"x","reject":true}`))
	if err == nil || !strings.Contains(err.Error(), `auth "echo" block at config.hcl:3:1`) || !strings.Contains(err.Error(), "config rejected as asked") {
		t.Fatalf("rejected Configure: %v", err)
	}

	st := p.State()
	if !st.Up || st.Restarts != 0 || st.Kind != "auth" || st.Name != "echo" || st.PID == 0 || st.Since.IsZero() {
		t.Fatalf("State = %+v", st)
	}
	if sts := h.States(); len(sts) != 1 || sts[0].Name != "echo" {
		t.Fatalf("States = %+v", sts)
	}
	stats := p.Stats()
	if stats.Calls < 3 || stats.LatencyCount != stats.Calls || stats.LatencySum <= 0 || stats.Errors != 1 {
		t.Fatalf("Stats = %+v", stats)
	}

	// Logs carry plugin="auth.echo"; the plugin's stderr lands there too.
	eventually(t, 2*time.Second, "plugin stderr in the log", func() bool {
		return hasLog(hook, func(e *logrus.Entry) bool {
			return e.Data["plugin"] == "auth.echo" && e.Message == "hello from the plugin"
		})
	})
	if !hasLog(hook, func(e *logrus.Entry) bool { return e.Data["plugin"] == "auth.echo" && e.Message == "plugin started" }) {
		t.Fatal("no plugin started log")
	}
}

func TestLaunchErrors(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	empty := t.TempDir()
	noexec := filepath.Join(t.TempDir(), "auth-echo")
	body, err := os.ReadFile(filepath.Join(binDir, "auth-echo"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(noexec, body, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	actual := hex.EncodeToString(sum[:])
	wrong := strings.Repeat("ab", 32)
	echo := filepath.Join(binDir, "auth-echo")

	for _, tc := range []struct {
		name string
		spec pluginhost.Spec
		want []string
	}{
		// The hint says where the path came from; make plugins only for a built-in one.
		{"missing built-in", pluginhost.Spec{Kind: sdk.KindAuth, Name: "jwt", Dir: empty},
			[]string{"plugin binary not found: " + filepath.Join(empty, "auth-jwt") +
				` (plugin_dir "` + empty + `" + "auth-jwt", the file name of a auth "jwt" block without command; set command to use a binary elsewhere; build the built-in plugins with make plugins)`}},
		{"log_sink file name", pluginhost.Spec{Kind: sdk.KindLogSink, Name: "es", Dir: empty},
			[]string{"plugin binary not found: " + filepath.Join(empty, "logsink-es") + ` (plugin_dir "` + empty + `" + "logsink-es"`}},
		{"missing outside plugin", pluginhost.Spec{Kind: sdk.KindAuth, Name: "apikey", Dir: empty},
			[]string{`"auth-apikey", the file name`, "set command"}},
		{"missing command", pluginhost.Spec{Kind: sdk.KindAuth, Name: "jwt", Command: filepath.Join(empty, "my-auth")},
			[]string{"plugin binary not found: " + filepath.Join(empty, "my-auth") +
				" (the path command names; a relative one is resolved against the config file's folder)"}},
		{"not executable", pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo", Command: noexec},
			[]string{"plugin binary is not executable: " + noexec}},
		{"directory", pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo", Command: empty},
			[]string{"is a directory"}},
		{"sha256 mismatch", pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo", Command: echo, SHA256: wrong},
			[]string{"sha256 mismatch", "expected " + wrong, "actual " + actual}},
		{"sha256 not hex", pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo", Command: echo, SHA256: "xyz"},
			[]string{"sha256 must be 64 hex digits"}},
		{"wrong kind", pluginhost.Spec{Kind: sdk.KindSharding, Name: "echo", Command: echo},
			[]string{`is a "auth" plugin (named "echo"), not a "sharding" plugin`}},
		{"wrong name", pluginhost.Spec{Kind: sdk.KindAuth, Name: "jwt", Command: echo},
			[]string{`calls itself auth "echo", not "jwt"`}},
		// sdk.Serve refuses to serve it; its stderr explains why.
		{"wrong protocol in Info", pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo", Command: filepath.Join(binDir, "auth-badproto")},
			[]string{"handshake failed", "plugin stderr: plugin not served", "protocol 99"}},
		{"handshake version mismatch", pluginhost.Spec{Kind: sdk.KindAuth, Name: "x", Command: filepath.Join(binDir, "handshake-mismatch")},
			[]string{"handshake failed, wrong protocol version", "Plugin version: 99"}},
		{"not a plugin", pluginhost.Spec{Kind: sdk.KindAuth, Name: "x", Command: filepath.Join(binDir, "not-a-plugin")},
			[]string{"handshake failed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Where = `block at config.hcl:7:3`
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			p, err := h.Launch(ctx, tc.spec)
			if err == nil {
				t.Fatalf("Launch succeeded: %+v", p.State())
			}
			msg := err.Error()
			t.Logf("%s (%s)", msg, time.Since(start).Round(time.Millisecond))
			if !strings.HasPrefix(msg, "block at config.hcl:7:3: ") {
				t.Errorf("error does not start with Where: %s", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %s", w, msg)
				}
			}
		})
	}
	if n := len(h.States()); n != 0 {
		t.Fatalf("failed launches left %d plugins", n)
	}

	// The right pin launches.
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo", Command: echo, SHA256: strings.ToUpper(actual)})
	if !p.State().Up {
		t.Fatal("pinned plugin not up")
	}
}

func TestCallTimeout(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo", CallTimeout: 300 * time.Millisecond})
	a := p.Authenticator()
	start := time.Now()
	_, err := authenticate(t, a, `{"sleep_ms":5000}`)
	took := time.Since(start)
	t.Logf("hung call returned after %s: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("err = %v", err)
	}
	if took < 300*time.Millisecond || took > time.Second {
		t.Fatalf("took %s", took)
	}
	if errors.Is(err, pluginhost.ErrUnavailable) {
		t.Fatal("a timeout is not unavailability")
	}
	// The plugin is still fine and was not restarted.
	if _, err := authenticate(t, a, `{}`); err != nil {
		t.Fatal(err)
	}
	if st := p.State(); !st.Up || st.Restarts != 0 {
		t.Fatalf("State = %+v", st)
	}
	if s := p.Stats(); s.Timeouts != 1 {
		t.Fatalf("Stats = %+v", s)
	}
	// The caller's own deadline still applies when shorter.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = a.Authenticate(ctx, &sdk.AuthRequest{Auth: json.RawMessage(`{"sleep_ms":2000}`)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller deadline: %v", err)
	}
}
