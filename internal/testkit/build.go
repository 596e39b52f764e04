package testkit

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// Build compiles pkg, a path relative to the module root (e.g.
// "./cmd/socket-server"), once per test process, and returns the binary.
func Build(t testing.TB, pkg string, buildFlags ...string) string {
	t.Helper()
	return plugintest.BuildIn(t, ModuleRoot(t), pkg, buildFlags...)
}

// Install builds pkg (as Build) and puts the binary at dst, creating its
// folder: a hard link, or a copy across file systems. For a plugin_dir,
// whose entries the server finds by name.
func Install(t testing.TB, pkg, dst string) string {
	t.Helper()
	src := Build(t, pkg)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Link(src, dst) == nil {
		return dst
	}
	if err := copyFile(src, dst); err != nil {
		t.Fatalf("install %s at %s: %v", pkg, dst, err)
	}
	return dst
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ServerAndPlugins builds ./cmd/socket-server and installs each named
// plugin (plugins/<name>) into a fresh plugin folder; it returns the
// server binary and the folder, for plugin_dir or PLUGIN_DIR.
func ServerAndPlugins(t testing.TB, plugins ...string) (server, pluginDir string) {
	t.Helper()
	pluginDir = filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range plugins {
		Install(t, "./plugins/"+name, filepath.Join(pluginDir, name))
	}
	return Build(t, "./cmd/socket-server"), pluginDir
}

// UseServer points $SOCKETFLEET_SERVER (plugintest.ServerEnv, what
// plugintest.CheckConfig and StartServer run) at ./cmd/socket-server built
// from the working tree, for the test's duration.
func UseServer(t *testing.T) string {
	t.Helper()
	bin := Build(t, "./cmd/socket-server")
	t.Setenv(plugintest.ServerEnv, bin)
	return bin
}
