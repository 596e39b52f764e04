package server

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/internal/testkit"
)

// benchReloadConfig has 50 event rules and 5 plugin blocks (real plugin
// binaries); secret changes the auth block, pong a rule.
func benchReloadConfig(pluginDir, logPath, secret, pong string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `server {
  plugin_dir = %q
}
auth "jwt" {
  secret   = %q
  audience = "chat"
}
sharding "hash" {
  shards = 1
  shard  = 0
}
metrics "prometheus" {}
log_sink "stdout" {
  path = %q
}
log_sink "elasticsearch" {
  url = "http://127.0.0.1:9"
}
namespace "/" {
`, pluginDir, secret, logPath)
	for i := range 50 {
		fmt.Fprintf(&b, "  event \"e%d\" {\n    rate_limit = \"10/s\"\n    reply { event = %q }\n  }\n", i, pong)
	}
	b.WriteString("}\n")
	return b.String()
}

// BenchmarkReload: the time from reading the file to the swap, for a
// config with 50 event rules and 5 plugin blocks, of which one (auth)
// changed (a new process, launched and configured) or none (rules only).
func BenchmarkReload(b *testing.B) {
	_, pluginDir := testkit.ServerAndPlugins(b, "auth-jwt", "sharding-hash", "metrics-prometheus", "logsink-stdout", "logsink-elasticsearch")
	dir := b.TempDir()
	path, logPath := filepath.Join(dir, "c.hcl"), filepath.Join(dir, "log.ndjson")
	write := func(src string) {
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write(benchReloadConfig(pluginDir, logPath, "s0", "p0"))
	file, diags := config.LoadFile(path)
	if diags.HasErrors() {
		b.Fatal(diags.Error())
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetLevel(logrus.WarnLevel)
	s, err := assemble(context.Background(), file, log, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { s.plugins.Load().close(context.Background()) }()

	for _, c := range []struct {
		name     string
		changeAt func(i int) (secret, pong string)
	}{
		{"auth-block-changed", func(i int) (string, string) { return fmt.Sprint("s", i+1), "p0" }},
		{"rules-only", func(i int) (string, string) { return "s-fixed", fmt.Sprint("p", i+1) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				secret, pong := c.changeAt(i)
				write(benchReloadConfig(pluginDir, logPath, secret, pong))
				b.StartTimer()
				res, err := s.Reload(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				if want := 5; res.PluginsKept+len(res.PluginsStarted) != want {
					b.Fatalf("%+v", res)
				}
			}
		})
	}
}
