package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestAdminBlock(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("ADMIN_PASSWORD_HASH", string(hash))
	cfg := mustParse(t, "admin {\n  username = \"admin\"\n  password_hash = env(\"ADMIN_PASSWORD_HASH\")\n  mode = \"development\"\n  read_only = true\n}\n")
	a := cfg.Admin
	if a == nil || !a.Auth || a.Username != "admin" || a.PasswordHash != string(hash) || !a.ReadOnly || a.Mode != AdminDevelopment || !a.UI {
		t.Fatalf("admin %+v", a)
	}
	if cfg := mustParse(t, ""); cfg.Admin != nil {
		t.Fatal("admin on without a block")
	}
	if a := mustParse(t, "admin {\n  auth = false\n}\n").Admin; a == nil || a.Auth || a.Mode != AdminProduction {
		t.Fatalf("auth = false: %+v", a)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "ui"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ui", "index.html"), []byte("<html>"), 0o600); err != nil {
		t.Fatal(err)
	}
	// ui_dir is relative to the config file's folder.
	cfg, diags := Parse([]byte("admin {\n  auth = false\n  ui_dir = \"ui\"\n}\n"), filepath.Join(dir, "test.hcl"))
	if diags.HasErrors() || cfg.Admin.UIDir != filepath.Join(dir, "ui") {
		t.Fatalf("ui_dir: %v %+v", diags, cfg)
	}
}

func TestAdminErrors(t *testing.T) {
	weak, _ := bcrypt.GenerateFromPassword([]byte("x"), 4)
	cases := []struct {
		name, src, summary string
		line, col          int
	}{
		{"no hash", "admin {\n  username = \"admin\"\n}", "Admin credentials missing", 1, 1},
		{"plaintext", "admin {\n  username = \"admin\"\n  password_hash = \"hunter2\"\n}", "Invalid password_hash", 3, 19},
		{"weak", "admin {\n  username = \"admin\"\n  password_hash = \"" + string(weak) + "\"\n}", "Weak password_hash", 3, 19},
		{"empty env", "admin {\n  username = \"admin\"\n  password_hash = env(\"ADMIN_HASH_UNSET_IN_TEST\")\n}", "Invalid function argument", 3, 24},
		{"bad mode", "admin {\n  auth = false\n  mode = \"debug\"\n}", "Invalid attribute value", 3, 10},
		{"creds with auth off", "admin {\n  auth = false\n  username = \"a\"\n}", "Credentials with auth = false", 3, 14},
		{"namespace taken", "admin {\n  auth = false\n}\nnamespace \"/admin\" {\n}", "Namespace taken by the admin block", 4, 1},
		{"ui_dir without the UI", "admin {\n  auth = false\n  ui_dir = \"no-such-folder\"\n}", "Invalid ui_dir", 3, 12},
		{"two blocks", "admin {\n  auth = false\n}\nadmin {\n  auth = false\n}", "Duplicate admin block", 4, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, diags := Parse([]byte(c.src), "test.hcl")
			d := firstError(diags)
			if d == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(d.Summary, c.summary) || d.Subject == nil || d.Subject.Start.Line != c.line || d.Subject.Start.Column != c.col {
				t.Fatalf("got %q at %v, want %q at %d:%d", d.Summary, d.Subject, c.summary, c.line, c.col)
			}
		})
	}
}
