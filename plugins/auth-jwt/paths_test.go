package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// Relative key files are read from the config file's folder (what the host
// puts on Configure's ctx), not from the plugin's working directory.
func TestKeyFilesResolveAgainstTheConfigFolder(t *testing.T) {
	k := getKeys(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "rsa.pem"), pubPEM(t, k.rsa.Public()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "jwks.json"), jwksJSON(t, jwkOf(t, "r", "", k.rsa.Public())), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := mint(t, jwt.SigningMethodRS256, k.rsa, "r", validClaims())
	for _, attr := range []string{"public_key_file", "jwks_file"} {
		t.Run(attr, func(t *testing.T) {
			file := map[string]string{"public_key_file": "keys/rsa.pem", "jwks_file": "keys/jwks.json"}[attr]
			raw, _ := json.Marshal(map[string]string{attr: file})
			p := newPlugin()
			p.now = func() time.Time { return testNow }
			p.logw = &testkit.Buffer{}
			if err := p.Configure(sdk.WithConfigDir(context.Background(), dir), sdk.Config(raw)); err != nil {
				t.Fatalf("Configure with config dir: %v", err)
			}
			wantAllow(t, decide(t, p, authReq(tok)), "user-1")

			// Without the folder the path is the working directory's: not there.
			err := newPlugin().Configure(context.Background(), sdk.Config(raw))
			if err == nil || !strings.Contains(err.Error(), file) {
				t.Fatalf("Configure without config dir: %v, want an error naming %s", err, file)
			}
		})
	}
}

// The token is a credential: an allowed decision tells the core to drop it.
func TestDecisionRedactsTheToken(t *testing.T) {
	p := configured(t, map[string]any{"secret": testSecret})
	d := decide(t, p, authReq(mint(t, jwt.SigningMethodHS256, []byte(testSecret), "", validClaims())))
	wantAllow(t, d, "user-1")
	if !slices.Equal(d.RedactAuth, []string{"token"}) {
		t.Fatalf("RedactAuth = %q, want [token]", d.RedactAuth)
	}
}
