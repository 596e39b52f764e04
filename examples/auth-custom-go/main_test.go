package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

const testKeys = `# test keys

k-alice alice lobby,team-red
  k-bob   bob
`

// config writes testKeys next to a config file and returns the block
// naming it relative to that folder, and the folder (the host's config_dir).
func config(t *testing.T) (sdk.Config, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keys.txt"), []byte(testKeys), 0o600); err != nil {
		t.Fatal(err)
	}
	return sdk.Config(`{"keys_file":"keys.txt"}`), dir
}

func req(auth string) sdk.AuthRequest {
	return sdk.AuthRequest{Namespace: "/", Auth: json.RawMessage(auth), RemoteAddr: "127.0.0.1:40000"}
}

// check runs the contract and the apikey cases against p, however it is
// served.
func check(t *testing.T, p sdk.Plugin) {
	cfg, dir := config(t)
	plugintest.CheckContract(t, p, plugintest.Options{Config: cfg, ConfigDir: dir})
	a := p.(sdk.Authenticator)
	plugintest.CheckAuth(t, a,
		plugintest.AuthCase{Name: "alice", Request: req(`{"key":"k-alice"}`), Allow: true, UserID: "alice", Redact: []string{"key"}},
		plugintest.AuthCase{Name: "bob", Request: req(`{"key":"k-bob"}`), Allow: true, UserID: "bob"},
		plugintest.AuthCase{Name: "wrong key", Request: req(`{"key":"k-alicE"}`)},
		plugintest.AuthCase{Name: "no key", Request: req(`{}`)},
		plugintest.AuthCase{Name: "key not a string", Request: req(`{"key":42}`)},
	)
	// CheckAuth looks at Allow and UserID; the rooms and messages are ours.
	for _, c := range []struct {
		auth, msg string
		rooms     []string
	}{
		{auth: `{"key":"k-alice"}`, rooms: []string{"lobby", "team-red"}},
		{auth: `{"key":"k-bob"}`},
		{auth: `{"key":"k-alicE"}`, msg: "invalid key"},
		{auth: `{}`, msg: "authentication required: no key"},
		{auth: ``, msg: "authentication required: no key"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r := req(c.auth)
		d, err := a.Authenticate(ctx, &r)
		cancel()
		if err != nil {
			t.Fatalf("Authenticate(%s): %v", c.auth, err)
		}
		if d.Message != c.msg || !slices.Equal(d.Rooms, c.rooms) {
			t.Errorf("Authenticate(%s) = message %q, rooms %q; want %q, %q", c.auth, d.Message, d.Rooms, c.msg, c.rooms)
		}
	}
}

func TestInProcess(t *testing.T) {
	check(t, plugintest.InProcess(t, newPlugin()))
}

func TestSubprocess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "auth-apikey")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p, _ := plugintest.Subprocess(t, bin, sdk.KindAuth)
	check(t, p)
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
