package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// TestThroughTheServer checks blocks with the server's own validate and
// real handshakes through the server, with sdk/plugintest's server helpers,
// as an outside author's test would.
func TestThroughTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	testkit.UseServer(t)
	p := plugintest.Plugin{Package: ".", Kind: sdk.KindAuth, Name: "jwt"}
	block := `secret   = "` + testSecret + `"
audience = "chat"`
	plugintest.CheckConfig(t, p, block)
	for _, c := range []struct{ snippet, want string }{
		{`audience = "chat"`, "one of secret, public_key_file or jwks_file is required"},
		{block + "\nleeway = \"soon\"", "Invalid duration"},
		{block + "\nalgorithms = [\"RS256\"]", "RS256 cannot be used with a secret"},
		{block + "\ntoken_sources = [\"auth\", \"x\"]", `unknown source "x"`},
	} {
		var ce *plugintest.ConfigError
		if err := plugintest.ValidateConfig(t, p, c.snippet); !errors.As(err, &ce) || !strings.Contains(ce.Diagnostics, c.want) {
			t.Errorf("block\n%s\n: %v, want the server to refuse it mentioning %s", c.snippet, err, c.want)
		}
	}

	srv := plugintest.StartServer(t, p, block+"\ndata_claims = [\"role\"]", `
namespace "/" {
  on_connect {
    emit "me" { args = [user, data] }
  }
}
`)
	token := mint(t, jwt.SigningMethodHS256, []byte(testSecret), "", liveClaims())
	auth, _ := json.Marshal(map[string]string{"token": token})
	c := srv.Connect(t, string(auth))
	if ev, err := c.Read(); err != nil || ev.Name != "me" || len(ev.Args) != 2 || string(ev.Args[0]) != `"user-1"` || string(ev.Args[1]) != `{"role":"member"}` {
		t.Errorf("on_connect: %+v, %v", ev, err)
	}
	if e := srv.Refused(t, `{}`); e.Message == "" || e.Message == "authentication unavailable" {
		t.Errorf("no token: refused with %+v, want the plugin's message", e)
	}
}
