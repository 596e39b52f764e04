package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validate on plugin blocks: a value the plugin refuses is shown at that
// attribute's line and column, with the plugin's message said once, and
// nothing but diagnostics is printed (no JSON log lines from stopping the
// plugins).
func TestValidateShowsPluginErrorsWhereTheyAre(t *testing.T) {
	dir := t.TempDir()
	buildPlugin(t, dir, "auth-jwt")
	cases := []struct {
		name, body string
		where      string // file:line:col of the diagnostic
		message    string // said exactly once
	}{
		{"bad attribute value", `  secret     = "0123456789abcdef0123456789abcdef"
  algorithms = ["RS999"]
`, ":4:16: Error: Invalid value for algorithms", `unknown algorithm "RS999"`},
		{"refused block", `  audience = "x"
`, ":2:1: Error: Plugin refused its configuration", "one of secret, public_key_file or jwks_file is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "config.hcl")
			src := "server { plugin_dir = \"" + dir + "\" }\nauth \"jwt\" {\n" + tc.body + "}\nnamespace \"/\" {}\n"
			if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			if code := run([]string{"validate", "--config", cfg}, &out, &errOut); code != 1 {
				t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
			}
			got := errOut.String()
			if !strings.Contains(got, cfg+tc.where) {
				t.Errorf("diagnostics do not point at %s%s:\n%s", cfg, tc.where, got)
			}
			if n := strings.Count(got, tc.message); n != 1 {
				t.Errorf("the plugin's message appears %d times, want once:\n%s", n, got)
			}
			for _, noise := range []string{"Configure: auth plugin: Configure", "block at", "{\"", "level="} {
				if strings.Contains(got, noise) {
					t.Errorf("output contains %q (repeated prefixes or a log line):\n%s", noise, got)
				}
			}
		})
	}
}

// validate prints diagnostics only, for valid and invalid plugin blocks, in
// either log format; and the paths of a plugin block (command, the files
// the plugin reads) are relative to the config file's folder, not to the
// working directory (this test's is cmd/socket-server).
func TestValidatePrintsDiagnosticsOnly(t *testing.T) {
	dir := t.TempDir()
	buildPlugin(t, filepath.Join(dir, "plugins"), "auth-jwt")
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "pub.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"json", "text"} {
		for _, tc := range []struct {
			name, key string
			code      int
			want      string
		}{
			{"valid", "keys/pub.pem", 0, "config OK: 1 namespaces, 1 plugins"},
			{"missing key file", "keys/nope.pem", 1, filepath.Join(dir, "keys", "nope.pem")},
		} {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				cfg := filepath.Join(dir, "config.hcl")
				src := "server { log_format = \"" + format + "\" }\n" +
					"auth \"jwt\" {\n  command         = \"plugins/auth-jwt\"\n  public_key_file = \"" + tc.key + "\"\n}\n" +
					"namespace \"/\" {}\n"
				if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
					t.Fatal(err)
				}
				var out, errOut bytes.Buffer
				code := run([]string{"validate", "--config", cfg}, &out, &errOut)
				all := out.String() + errOut.String()
				if code != tc.code || !strings.Contains(all, tc.want) {
					t.Fatalf("exit %d, want %d with %q:\n%s", code, tc.code, tc.want, all)
				}
				for _, noise := range []string{"{\"", "level="} {
					if strings.Contains(all, noise) {
						t.Errorf("output holds a log line (%q):\n%s", noise, all)
					}
				}
			})
		}
	}
}

// validate explains a recovery block the adapter cannot back (pub/sub
// forgets what it published), at the block, and accepts it in streams
// mode. Redis need not be up: the plugin is only configured.
func TestValidateExplainsRecoveryWithTheWrongAdapter(t *testing.T) {
	dir := t.TempDir()
	buildPlugin(t, dir, "adapter-redis")
	for _, tc := range []struct {
		mode string
		code int
		want string
	}{
		{"classic", 1, `:2:3: Error: Connection state recovery needs the adapter's help`},
		{"sharded", 1, `needs mode = "streams"`},
		{"streams", 0, "config OK: 1 namespaces, 1 plugins"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "config.hcl")
			src := "server {\n  recovery {}\n  plugin_dir = \"" + dir + "\"\n}\nadapter \"redis\" {\n  url  = \"redis://127.0.0.1:1\"\n  mode = \"" + tc.mode + "\"\n}\nnamespace \"/\" {}\n"
			if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			code := run([]string{"validate", "--config", cfg}, &out, &errOut)
			all := out.String() + errOut.String()
			if code != tc.code || !strings.Contains(all, tc.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, tc.code, tc.want, all)
			}
		})
	}
}
