package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// plugin is this package as the server sees it: auth "apikey".
var plugin = plugintest.Plugin{Package: ".", Kind: sdk.KindAuth, Name: "apikey"}

const testKeys = `# test keys

k-alice alice lobby,team-red
  k-bob   bob
`

// keysFile writes testKeys to a file and returns its absolute path.
func keysFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(path, []byte(testKeys), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// config writes testKeys next to a config file and returns the block
// naming it relative to that folder, and the folder (the host's config_dir).
func config(t *testing.T) (sdk.Config, string) {
	t.Helper()
	dir := filepath.Dir(keysFile(t))
	return sdk.Config(`{"keys_file":"keys.txt"}`), dir
}

// req is a CONNECT to "/" with payload auth, as the core sends it (the
// remote address is an IP without a port).
func req(auth string) sdk.AuthRequest {
	return sdk.AuthRequest{Namespace: "/", Auth: json.RawMessage(auth), RemoteAddr: "127.0.0.1"}
}

// check runs the contract and the apikey cases against p, however it is
// served.
func check(t *testing.T, p sdk.Plugin) {
	cfg, dir := config(t)
	plugintest.CheckContract(t, p, plugintest.Options{Config: cfg, ConfigDir: dir})
	plugintest.CheckAuth(t, p.(sdk.Authenticator),
		plugintest.AuthCase{Name: "alice", Request: req(`{"key":"k-alice"}`), Allow: true, UserID: "alice", Rooms: []string{"lobby", "team-red"}, Redact: []string{"key"}},
		plugintest.AuthCase{Name: "bob", Request: req(`{"key":"k-bob"}`), Allow: true, UserID: "bob", Rooms: []string{}, Redact: []string{"key"}},
		plugintest.AuthCase{Name: "wrong key", Request: req(`{"key":"k-alicE"}`), Message: "invalid key"},
		plugintest.AuthCase{Name: "no key", Request: req(`{}`), Message: "authentication required: no key"},
		plugintest.AuthCase{Name: "no payload", Request: req(``), Message: "authentication required: no key"},
		plugintest.AuthCase{Name: "key not a string", Request: req(`{"key":42}`), Message: "authentication required: no key"},
	)
}

func TestInProcess(t *testing.T) {
	check(t, plugintest.InProcess(t, newPlugin()))
}

func TestSubprocess(t *testing.T) {
	p, _ := plugintest.Subprocess(t, plugintest.Build(t, plugin.Package), sdk.KindAuth)
	check(t, p)
}

// TestConfig: the server's own check of the block (schema, then
// Configure), through socket-server validate.
func TestConfig(t *testing.T) {
	plugintest.CheckConfig(t, plugin, `keys_file = "`+keysFile(t)+`"`)
	for _, c := range []struct{ snippet, want string }{
		{``, "Missing required argument"},
		{`keys_file = ["keys.txt"]`, "keys_file must be a string"},
		{`keys_file = "/nonexistent/keys.txt"`, "no such file"},
	} {
		var ce *plugintest.ConfigError
		if err := plugintest.ValidateConfig(t, plugin, c.snippet); !errors.As(err, &ce) || !strings.Contains(ce.Diagnostics, c.want) {
			t.Errorf("block with %q: %v, want the server to refuse it saying %q", c.snippet, err, c.want)
		}
	}
}

// TestThroughTheServer: real handshakes against socket-server running the
// plugin: the user id reaches the rules, the rooms are joined, refusals
// carry the plugin's message.
func TestThroughTheServer(t *testing.T) {
	srv := plugintest.StartServer(t, plugin, `keys_file = "`+keysFile(t)+`"`, `
namespace "/" {
  on_connect {
    emit "me" { args = [user] }
  }
  event "say" {
    broadcast { to = "lobby" }
  }
}
`)
	alice := srv.Connect(t, `{"key":"k-alice"}`)
	if ev, err := alice.Read(); err != nil || ev.Name != "me" || len(ev.Args) != 1 || string(ev.Args[0]) != `"alice"` {
		t.Fatalf("on_connect: %+v, %v; want me(\"alice\")", ev, err)
	}
	if err := alice.Emit("say", "hello lobby"); err != nil {
		t.Fatal(err)
	}
	if ev, err := alice.Read(); err != nil || ev.Name != "say" || string(ev.Args[0]) != `"hello lobby"` {
		t.Fatalf("a broadcast to lobby, which alice joined at connect: %+v, %v", ev, err)
	}
	for auth, msg := range map[string]string{
		`{"key":"stolen"}`: "invalid key",
		`{}`:               "authentication required: no key",
		``:                 "authentication required: no key",
	} {
		if e := srv.Refused(t, auth); e.Message != msg {
			t.Errorf("CONNECT with %q refused with %q, want %q", auth, e.Message, msg)
		}
	}
}

// TestShippedConfig: config.hcl beside this file, as its comment says to
// use it, with the plugin built beside it.
func TestShippedConfig(t *testing.T) {
	server := plugintest.NeedServer(t)
	dir := t.TempDir()
	for _, f := range []string{"config.hcl", "keys.txt"} {
		copyFile(t, f, filepath.Join(dir, f))
	}
	copyFile(t, plugintest.Build(t, plugin.Package), filepath.Join(dir, "auth-apikey"))
	cmd := exec.Command(server, "validate", "--config", "config.hcl")
	// The plugin's paths are relative to the config's folder, which is
	// also the working directory here.
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("socket-server validate --config config.hcl: %v\n%s", err, out)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigureErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, c := range []struct{ cfg, want string }{
		{`{}`, "keys_file is required"},
		{`{"keys_file":"` + filepath.Join(dir, "missing") + `"}`, "no such file"},
		{`{"keys_file":"` + write("short", "k-1\n") + `"}`, "short:1: want"},
		{`{"keys_file":"` + write("long", "\nk-1 u1 r1 extra\n") + `"}`, "long:2: want"},
		{`{"keys_file":"` + write("dup", "k-1 u1\nk-1 u2\n") + `"}`, "dup:2: key listed twice"},
	} {
		err := newPlugin().Configure(context.Background(), sdk.Config(c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Configure(%s) = %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
	if _, err := newPlugin().Authenticate(context.Background(), &sdk.AuthRequest{}); err == nil {
		t.Error("Authenticate before Configure: want an error")
	}
}

// TestSampleKeys: the keys.txt shipped beside the example, as the README
// uses it.
func TestSampleKeys(t *testing.T) {
	keys, err := readKeys("keys.txt")
	if err != nil {
		t.Fatal(err)
	}
	alice := keys[sha256.Sum256([]byte("demo-key-alice"))]
	if len(keys) != 3 || alice.id != "alice" || !slices.Equal(alice.rooms, []string{"lobby", "team-red"}) {
		t.Errorf("keys.txt: %d keys, alice = %+v", len(keys), alice)
	}
}
