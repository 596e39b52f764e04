package plugintest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// InCI reports whether the environment variable CI is "true", as CI
// services set it.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable ends the test because something it needs (what) is missing:
// a skip on a developer's machine, saying hint (how to install it), but a
// failure when CI=true, so that CI never passes by skipping.
func Unavailable(t testing.TB, what, hint string) {
	t.Helper()
	msg := what + " is missing: " + hint
	if InCI() {
		t.Fatal(msg + " (CI=true: missing tools fail instead of skipping)")
	}
	t.Skip(msg + " (skipped; with CI=true this fails)")
}

// sbinDirs are searched after PATH: Debian installs nginx there, and a
// non-root user's PATH often lacks it.
var sbinDirs = []string{"/usr/sbin", "/usr/local/sbin", "/sbin"}

// LookTool returns the path of the program name, from PATH or else sbinDirs.
func LookTool(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil || strings.ContainsRune(name, os.PathSeparator) {
		return p, err
	}
	for _, d := range sbinDirs {
		if p, err2 := exec.LookPath(filepath.Join(d, name)); err2 == nil {
			return p, nil
		}
	}
	return "", err
}

// NeedTool returns the path of the program name (see LookTool), or ends the
// test through Unavailable with hint, e.g. "apt-get install redis-server".
func NeedTool(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := LookTool(name)
	if err != nil {
		Unavailable(t, name, hint)
	}
	return p
}

// NeedFile ends the test through Unavailable unless path exists (an npm
// package under node_modules, a data file); what names it in the message.
func NeedFile(t testing.TB, path, what, hint string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Unavailable(t, what+" ("+path+")", hint)
	}
}

type buildEntry struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // key -> *buildEntry

// Build compiles the Go package pkg (as `go build` names it, relative to
// the test's working directory: "." for the plugin under test) once per test
// process and returns the binary's path. See BuildIn.
func Build(t testing.TB, pkg string, buildFlags ...string) string {
	t.Helper()
	return BuildIn(t, "", pkg, buildFlags...)
}

// BuildIn is Build with pkg relative to dir ("" is the working directory).
//
// The first call for a (dir, pkg, flags) runs `go build` (its own cache
// makes an unchanged package quick) into a per-user folder under
// os.TempDir(), named by a hash of the key, through a temporary name and a
// rename, so that concurrent test processes never run a half-written file;
// later calls in the process return the same path. Tests must not modify
// the binary; copy it if they need to.
func BuildIn(t testing.TB, dir, pkg string, buildFlags ...string) string {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.Join(append([]string{abs, pkg, runtime.GOOS, runtime.GOARCH}, buildFlags...), "\x00")
	v, _ := builds.LoadOrStore(key, &buildEntry{})
	e := v.(*buildEntry)
	e.once.Do(func() { e.path, e.err = goBuild(abs, pkg, key, buildFlags) })
	if e.err != nil {
		t.Fatal(e.err)
	}
	return e.path
}

func goBuild(dir, pkg, key string, flags []string) (string, error) {
	sum := sha256.Sum256([]byte(key))
	out := filepath.Join(os.TempDir(), fmt.Sprintf("socketfleet-testbin-%d", os.Getuid()), hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	name := filepath.Base(pkg)
	if name == "." || name == ".." || name == "" {
		name = filepath.Base(filepath.Join(dir, pkg))
	}
	bin := filepath.Join(out, name)
	tmp := fmt.Sprintf("%s.tmp%d", bin, os.Getpid())
	args := append(append([]string{"build"}, flags...), "-o", tmp, pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, b)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}
