package main

import (
	"bytes"
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
