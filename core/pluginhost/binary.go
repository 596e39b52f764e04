package pluginhost

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/socketfleet/socketfleet/sdk"
)

// BinaryName is the file name a plugin of kind and name has in the plugin
// directory: "<kind>-<name>", with kind "log_sink" spelled "logsink". It is
// the one definition of the rule: config's messages use it too.
func BinaryName(kind sdk.Kind, name string) string {
	return strings.ReplaceAll(string(kind), "_", "") + "-" + name
}

// resolveBinary finds the plugin binary of spec, checks that it is an
// executable file and, when spec pins one, that its sha256 matches. It
// returns the absolute path and the pinned digest (nil when not pinned).
func resolveBinary(spec Spec) (string, []byte, error) {
	path := spec.Command
	if path == "" {
		path = filepath.Join(spec.Dir, BinaryName(spec.Kind, spec.Name))
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	var want []byte
	if spec.SHA256 != "" {
		w, err := hex.DecodeString(strings.TrimSpace(spec.SHA256))
		if err != nil || len(w) != sha256.Size {
			return "", nil, fmt.Errorf("%s: sha256 must be 64 hex digits, got %q", spec.Where, spec.SHA256)
		}
		want = w
	}
	if err := checkBinary(spec, path, want); err != nil {
		return "", nil, err
	}
	return path, want, nil
}

// checkBinary is run before every launch, restarts included: a binary
// replaced on disk under a pin is refused.
func checkBinary(spec Spec, path string, want []byte) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: plugin binary not found: %s (%s)", spec.Where, path, notFoundHint(spec))
	case err != nil:
		return fmt.Errorf("%s: plugin binary %s: %v", spec.Where, path, err)
	case fi.IsDir():
		return fmt.Errorf("%s: plugin binary %s is a directory", spec.Where, path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: plugin binary %s is not a regular file", spec.Where, path)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s: plugin binary is not executable: %s (mode %v; chmod +x it)", spec.Where, path, fi.Mode().Perm())
	}
	if want == nil {
		return nil
	}
	got, err := fileSHA256(path)
	if err != nil {
		return fmt.Errorf("%s: plugin binary %s: computing sha256: %v", spec.Where, path, err)
	}
	if hex.EncodeToString(got) != hex.EncodeToString(want) {
		return fmt.Errorf("%s: plugin binary %s: sha256 mismatch: expected %x, actual %x (rebuilt or replaced? update sha256 in config)", spec.Where, path, want, got)
	}
	return nil
}

// notFoundHint says where the path came from, so the fix is obvious.
func notFoundHint(spec Spec) string {
	if spec.Command != "" {
		return "the path command names; a relative one is resolved against the config file's folder"
	}
	name := BinaryName(spec.Kind, spec.Name)
	hint := fmt.Sprintf("plugin_dir %q + %q, the file name of a %s %q block without command; set command to use a binary elsewhere", spec.Dir, name, spec.Kind, spec.Name)
	if builtin[name] {
		hint += "; build the built-in plugins with make plugins"
	}
	return hint
}

// builtin names the plugins of this repository's plugins/ folder, the ones
// make plugins builds.
var builtin = map[string]bool{
	"auth-jwt": true, "adapter-redis": true, "sharding-hash": true,
	"metrics-prometheus": true, "logsink-elasticsearch": true, "logsink-stdout": true,
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
