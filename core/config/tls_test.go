package config

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

func TestTLSBlock(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t)
	certPEM, keyPEM := ca.Issue(t, 7)
	testkit.WriteKeyPair(t, dir, certPEM, keyPEM)
	cfgFile := filepath.Join(dir, "config.hcl")
	// Relative paths are the config folder's, wherever the server starts.
	src := "server {\n  tls {\n    cert_file = \"cert.pem\"\n    key_file = \"key.pem\"\n    min_version = \"1.3\"\n    metrics = false\n  }\n}\n"
	if err := os.WriteFile(cfgFile, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	got := mustLoad(t, cfgFile).Server.TLS
	if got == nil || got.CertFile != filepath.Join(dir, "cert.pem") || got.KeyFile != filepath.Join(dir, "key.pem") ||
		got.MinVersion != tls.VersionTLS13 || got.Metrics {
		t.Fatalf("tls = %+v", got)
	}

	// Defaults: TLS 1.2, the metrics listener too; no block, no TLS.
	def := mustParse(t, fmt.Sprintf("server {\n  tls {\n    cert_file = %q\n    key_file = %q\n  }\n}\n",
		filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))).Server.TLS
	if def == nil || def.MinVersion != tls.VersionTLS12 || !def.Metrics {
		t.Fatalf("defaults = %+v", def)
	}
	if mustParse(t, "server {}").Server.TLS != nil {
		t.Fatal("no tls block, yet TLS")
	}
}

func TestTLSErrors(t *testing.T) {
	t.Setenv("LOG_LEVEL", "")
	dir := t.TempDir()
	ca := testkit.NewCA(t)
	cert1, key1 := ca.Issue(t, 1)
	_, key2 := ca.Issue(t, 2)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert, key, otherKey := write("cert.pem", cert1), write("key.pem", key1), write("other-key.pem", key2)
	garbage := write("garbage.pem", []byte("not a pem file\n"))
	unreadable := write("unreadable.pem", key1)
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	_, readErr := os.ReadFile(unreadable) // nil as root: that case is left out

	block := func(certFile, keyFile, extra string) string {
		return fmt.Sprintf("server {\n  tls {\n    cert_file = %q\n    key_file = %q\n%s  }\n}\n", certFile, keyFile, extra)
	}
	type tlsCase struct {
		name, src, summary, detail string
		line, col                  int
	}
	cases := []tlsCase{
		{"missing cert", block(filepath.Join(dir, "nope.pem"), key, ""), "Cannot read certificate", "no such file", 3, 17},
		{"cert not PEM", block(garbage, key, ""), "Invalid certificate", "no PEM \"CERTIFICATE\" block", 3, 17},
		{"key given as cert", block(key, key, ""), "Invalid certificate", "no PEM", 3, 17},
		{"missing key", block(cert, filepath.Join(dir, "nope.pem"), ""), "Cannot read private key", "no such file", 4, 16},
		{"key not PEM", block(cert, garbage, ""), "Invalid private key", "garbage.pem", 4, 16},
		{"mismatched pair", block(cert, otherKey, ""), "Key does not match certificate", "is not the key of the certificate", 4, 16},
		{"bad min_version", block(cert, key, "    min_version = \"1.1\"\n"), "Invalid min_version", "\"1.2\" or \"1.3\"", 5, 19},
		{"min_version not a version", block(cert, key, "    min_version = \"TLSv1.2\"\n"), "Invalid min_version", "", 5, 19},
		{"empty cert path", block("", key, ""), "Empty path", "", 3, 17},
		{"no key_file", "server {\n  tls {\n    cert_file = \"c.pem\"\n  }\n}\n", "Missing required argument", "key_file", 2, 7},
		{"duplicate tls", fmt.Sprintf("server {\n  tls {\n    cert_file = %q\n    key_file = %q\n  }\n  tls {\n    cert_file = %q\n    key_file = %q\n  }\n}\n", cert, key, cert, key),
			"Duplicate tls block", "", 6, 3},
	}
	if readErr != nil {
		cases = append(cases, tlsCase{"unreadable key", block(cert, unreadable, ""), "Cannot read private key", "permission denied", 4, 16})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := Parse([]byte(tc.src), "test.hcl")
			if cfg != nil || !diags.HasErrors() {
				t.Fatalf("expected an error, got %v", diags)
			}
			d := firstError(diags)
			if d.Summary != tc.summary || !strings.Contains(d.Detail, tc.detail) {
				t.Fatalf("got %q: %s; want %q containing %q", d.Summary, d.Detail, tc.summary, tc.detail)
			}
			if d.Subject == nil || d.Subject.Filename != "test.hcl" || d.Subject.Start.Line != tc.line || d.Subject.Start.Column != tc.col {
				t.Fatalf("at %v, want test.hcl:%d:%d (%s)", d.Subject, tc.line, tc.col, d.Detail)
			}
		})
	}
}

func TestLoadKeyPair(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t)
	c, k := ca.Issue(t, 42)
	certFile, keyFile := testkit.WriteKeyPair(t, dir, c, k)
	pair, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if pair.Leaf == nil || pair.Leaf.SerialNumber.Int64() != 42 {
		t.Fatalf("leaf = %+v", pair.Leaf)
	}
}
