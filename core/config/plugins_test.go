package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

func TestPluginBlocks(t *testing.T) {
	t.Setenv("JWT_SECRET", "s3cret")
	src := `
server { plugin_dir = "/opt/plugins" }
auth "jwt" {
  sha256       = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
  call_timeout = "500ms"
  secret       = env("JWT_SECRET")
  audience     = "chat"
  leeway       = "45s"
  max_token    = "4KB"
  algorithms   = ["HS256"]
  claims       = { role = "r" }
  strict       = true
  weight       = 2.5
}
log_sink "stdout" {}
log_sink "file" { command = "/usr/local/bin/my-sink" }
`
	cfg, diags := Parse([]byte(src), "p.hcl")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if cfg.Server.PluginDir != "/opt/plugins" || len(cfg.Plugins) != 3 {
		t.Fatalf("plugins %+v dir %q", cfg.Plugins, cfg.Server.PluginDir)
	}
	a := cfg.Plugin(sdk.KindAuth)
	if a.Name != "jwt" || a.CallTimeout != 500*time.Millisecond || !strings.HasPrefix(a.SHA256, "abcdef") || a.BinaryName() != "auth-jwt" {
		t.Fatalf("auth block %+v", a)
	}
	if got := cfg.Plugins[2]; got.Command != "/usr/local/bin/my-sink" || got.BinaryName() != "logsink-file" {
		t.Fatalf("log sink %+v", got)
	}
	schema := sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "secret", Type: sdk.TypeString, Required: true},
		{Name: "audience", Type: sdk.TypeString},
		{Name: "issuer", Type: sdk.TypeString},
		{Name: "leeway", Type: sdk.TypeDuration},
		{Name: "max_token", Type: sdk.TypeSize},
		{Name: "algorithms", Type: sdk.TypeListString},
		{Name: "claims", Type: sdk.TypeMapString},
		{Name: "strict", Type: sdk.TypeBool},
		{Name: "weight", Type: sdk.TypeNumber},
	}}
	pc, diags := a.DecodeBody(schema)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	want := `{"secret":"s3cret","audience":"chat","leeway":"45s","max_token":4000,"algorithms":["HS256"],"claims":{"role":"r"},"strict":true,"weight":2.5}`
	if string(pc) != want {
		t.Fatalf("plugin config\n got %s\nwant %s", pc, want)
	}
}

func TestPluginBlockErrors(t *testing.T) {
	schema := sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "secret", Type: sdk.TypeString, Required: true},
		{Name: "leeway", Type: sdk.TypeDuration},
		{Name: "algorithms", Type: sdk.TypeListString},
	}}
	for _, tc := range []struct {
		name, src string
		decode    bool // the error comes from the plugin's schema
		summary   string
		line, col int
	}{
		{"two auth blocks", "auth \"a\" {}\nauth \"b\" {}\n", false, "Duplicate plugin block", 2, 1},
		{"same log sink twice", "log_sink \"x\" {}\nlog_sink \"x\" {}\n", false, "Duplicate plugin block", 2, 1},
		{"bad sha256", "auth \"a\" {\n  sha256 = \"xyz\"\n}\n", false, "Invalid sha256", 2, 12},
		{"bad call_timeout", "auth \"a\" {\n  call_timeout = \"soon\"\n}\n", false, "Invalid duration", 2, 18},
		{"bad metrics listen", "metrics \"p\" {\n  listen = \"9100\"\n}\n", false, "Invalid listen address", 2, 12},
		{"unknown attribute", "auth \"a\" {\n  secret = \"x\"\n  secrte = \"y\"\n}\n", true, "Unsupported argument", 3, 3},
		{"missing required", "auth \"a\" {\n  leeway = \"1s\"\n}\n", true, "Missing required argument", 1, 10},
		{"wrong type", "auth \"a\" {\n  secret = \"x\"\n  algorithms = \"HS256\"\n}\n", true, "Incorrect attribute value type", 3, 16},
		{"bad duration", "auth \"a\" {\n  secret = \"x\"\n  leeway = \"1 fortnight\"\n}\n", true, "Invalid duration", 3, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := Parse([]byte(tc.src), "p.hcl")
			if tc.decode {
				if diags.HasErrors() {
					t.Fatal(diags.Error())
				}
				_, diags = cfg.Plugins[0].DecodeBody(schema)
			}
			d := firstError(diags)
			if d == nil {
				t.Fatal("no error")
			}
			if d.Summary != tc.summary || d.Subject.Start.Line != tc.line || d.Subject.Start.Column != tc.col {
				t.Fatalf("got %q at %d:%d (%s), want %q at %d:%d", d.Summary, d.Subject.Start.Line, d.Subject.Start.Column, d.Detail, tc.summary, tc.line, tc.col)
			}
		})
	}
}

// A relative command means what the operator reads: next to the config
// file, wherever the server was started. The block knows that folder, to
// tell the plugin (its own relative paths).
func TestCommandResolvesAgainstTheConfigFolder(t *testing.T) {
	src := `
auth "apikey" { command = "plugins/auth-apikey" }
log_sink "a" { command = "/usr/local/bin/my-sink" }
log_sink "b" { command = "../bin/sink" }
log_sink "c" {}
`
	cfg, diags := Parse([]byte(src), "/etc/socketfleet/config.hcl")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	for i, want := range []string{"/etc/socketfleet/plugins/auth-apikey", "/usr/local/bin/my-sink", "/etc/bin/sink", ""} {
		p := cfg.Plugins[i]
		if p.Command != want || p.ConfigDir != "/etc/socketfleet" {
			t.Errorf("%s %q: command %q, config dir %q; want %q, /etc/socketfleet", p.Kind, p.Name, p.Command, p.ConfigDir, want)
		}
	}

	// A file named relative to the working directory has that folder, absolute.
	cfg, diags = Parse([]byte(`auth "x" { command = "x" }`), "config.hcl")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	wd, _ := os.Getwd()
	if p := cfg.Plugins[0]; p.ConfigDir != wd || p.Command != filepath.Join(wd, "x") {
		t.Errorf("config.hcl in the working directory: command %q, config dir %q", p.Command, p.ConfigDir)
	}
}
