package testkit

import (
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
)

const modulePath = "github.com/socketfleet/socketfleet"

var moduleLine = regexp.MustCompile(`(?m)^module\s+` + regexp.QuoteMeta(modulePath) + `\s*$`)

var (
	rootOnce sync.Once
	root     string
)

// ModuleRoot returns the root of this module: the nearest folder above the
// working directory whose go.mod declares modulePath (a nested module,
// such as sdk's to be, is passed over).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			return
		}
		for {
			b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && moduleLine.Match(b) {
				root = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return
			}
			dir = parent
		}
	})
	if root == "" {
		t.Fatalf("no go.mod of %s above the working directory", modulePath)
	}
	return root
}
