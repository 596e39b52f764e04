package testkit

import (
	"path/filepath"
	"testing"

	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// hints say how to install the tools tests need; e2e-deps is what CI runs.
var hints = map[string]string{
	"redis-server": "apt-get install redis-server (make e2e-deps does)",
	"redis-cli":    "apt-get install redis-server (make e2e-deps does)",
	"nginx":        "apt-get install nginx (make e2e-deps does)",
	"prometheus":   "apt-get install prometheus (make e2e-deps does)",
	"promtool":     "apt-get install prometheus (make e2e-deps does)",
	"chromium":     "apt-get install chromium (make e2e-deps does)",
	"node":         "install Node.js 20+ (apt-get install nodejs)",
	"npm":          "install npm (apt-get install npm)",
}

// Need returns the paths of the programs names (see plugintest.LookTool),
// skipping the test when one is missing, or failing it when CI=true.
func Need(t testing.TB, names ...string) []string {
	t.Helper()
	paths := make([]string, len(names))
	for i, n := range names {
		hint, ok := hints[n]
		if !ok {
			hint = "install " + n
		}
		paths[i] = plugintest.NeedTool(t, n, hint)
	}
	return paths
}

// NeedNPM returns the folder of the npm package pkg (e.g.
// "socket.io-client") under test/e2e/node_modules, after Need(t, "node"),
// with the tool rule of Need when it is not installed.
func NeedNPM(t testing.TB, pkg string) string {
	t.Helper()
	Need(t, "node")
	dir := filepath.Join(ModuleRoot(t), "test", "e2e", "node_modules", filepath.FromSlash(pkg))
	plugintest.NeedFile(t, dir, "npm package "+pkg, "run `make e2e-deps` (npm ci in test/e2e)")
	return dir
}
