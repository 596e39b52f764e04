package plugintest_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// useRepoServer points $SOCKETFLEET_SERVER at a server freshly built from
// this repository (the sdk's module sits in its sdk/ folder), unless the
// environment already names one.
func useRepoServer(t *testing.T) {
	t.Helper()
	if os.Getenv(plugintest.ServerEnv) != "" {
		return
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.Contains(string(b), "module github.com/socketfleet/socketfleet\n") {
		plugintest.Unavailable(t, "the socketfleet repository around sdk/", "set "+plugintest.ServerEnv)
	}
	t.Setenv(plugintest.ServerEnv, plugintest.BuildIn(t, root, "./cmd/socket-server"))
}

// testPlugin is sdk/internal/testplugin serving auth "test": it allows
// {"token":"good"} as u1 in room r1 with data {"role":"tester"}; its
// schema has one attribute, note (a string).
var testPlugin = plugintest.Plugin{Package: "../internal/testplugin", Kind: sdk.KindAuth, Name: "test"}

func TestValidateConfig(t *testing.T) {
	useRepoServer(t)
	t.Setenv("TESTPLUGIN_KIND", "auth")
	plugintest.CheckConfig(t, testPlugin, `note = "hello"`)
	plugintest.CheckConfig(t, testPlugin, ``)
	for _, c := range []struct{ snippet, want string }{
		{`bogus = 1`, `An argument named "bogus" is not expected here`},
		{`note = ["a"]`, "note must be a string"},
	} {
		err := plugintest.ValidateConfig(t, testPlugin, c.snippet)
		var ce *plugintest.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(ce.Diagnostics, c.want) || !strings.Contains(ce.Diagnostics, "config.hcl:3:") || !strings.Contains(ce.Config, c.snippet) {
			t.Errorf("ValidateConfig(%s) = %v, want the server's diagnostic %q at line 3", c.snippet, err, c.want)
		}
	}
}

// TestCheckConfigFails: a config the server refuses fails the test, with
// the server's diagnostics. The failing test runs in a child process.
func TestCheckConfigFails(t *testing.T) {
	if os.Getenv("PLUGINTEST_CHILD") == "config" {
		t.Setenv("TESTPLUGIN_KIND", "auth")
		plugintest.CheckConfig(t, testPlugin, `bogus = 1`)
		return
	}
	useRepoServer(t)
	out := runChild(t, "TestCheckConfigFails", "config")
	for _, want := range []string{`CheckConfig(auth "test")`, `refused the config`, `Unsupported argument`, `3 |   bogus = 1`} {
		if !strings.Contains(out, want) {
			t.Errorf("the failure does not say %q:\n%s", want, out)
		}
	}
}

// TestStartServer: the plugin behind the real server, through the polling
// client: accepted with its user, rooms and data; refused with its message
// and data; "authentication unavailable" when it fails; events both ways.
func TestStartServer(t *testing.T) {
	useRepoServer(t)
	t.Setenv("TESTPLUGIN_KIND", "auth")
	srv := plugintest.StartServer(t, testPlugin, `note = "e2e"`, `
namespace "/" {
  on_connect {
    emit "me" { args = [user, data] }
  }
  event "echo" {
    reply { event = "echoed" }
  }
}
`)
	c := srv.Connect(t, `{"token":"good"}`)
	if c.ID == "" || c.SID == "" || c.ID == c.SID {
		t.Errorf("socket id %q, session id %q", c.ID, c.SID)
	}
	ev, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Name != "me" || len(ev.Args) != 2 || string(ev.Args[0]) != `"u1"` || string(ev.Args[1]) != `{"role":"tester"}` {
		t.Errorf("on_connect: %s %s", ev.Name, ev.Args)
	}
	if err := c.Emit("echo", "hi", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if ev, err := c.Read(); err != nil || ev.Name != "echoed" || len(ev.Args) != 2 || string(ev.Args[0]) != `"hi"` || string(ev.Args[1]) != `{"n":1}` {
		t.Errorf("echo: %+v, %v", ev, err)
	}

	ce := srv.Refused(t, `{"token":"bad"}`)
	if ce.Message != "invalid token" || string(ce.Data) != `{"code":"bad_token"}` {
		t.Errorf("refusal: %+v", ce)
	}
	if ce := srv.Refused(t, ``); ce.Message != "invalid token" {
		t.Errorf("no payload: %+v", ce)
	}
	if ce := srv.Refused(t, `{"token":"error"}`); ce.Message != "authentication unavailable" {
		t.Errorf("plugin error: %+v", ce)
	}
	if _, err := srv.Dial(`"not an object"`); err == nil {
		t.Error("Dial with a non-object payload: want an error")
	}
}
