// Package layering checks what docs/architecture.md promises about the
// rooms of the code: which package may import which, and that the document
// names every package. A new package, or a new import across rooms, makes
// this test fail until the document and the table below agree with it.
package layering

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/socketfleet/socketfleet/"

// allowed maps a package (or a folder of packages, ending in "/") to the
// packages of this module its non-test code may import; an entry ending in
// "/" allows a folder. The longest matching key applies.
var allowed = map[string][]string{
	"core/protocol/eiowire": {},
	"core/protocol/siowire": {},

	"sdk":                       {"sdk/internal/"},
	"sdk/internal/pluginpb":     {},
	"sdk/internal/inproc":       {"sdk"},
	"sdk/internal/testplugin":   {"sdk", "sdk/plugintest"},
	"sdk/plugintest":            {"sdk", "sdk/internal/inproc"},
	"plugins/":                  {"sdk"},
	"examples/":                 {"sdk"},
	"core/pluginhost/internal/": {"sdk"},

	"core/engineio":              {"core/protocol/eiowire"},
	"core/rooms":                 {"core/engineio"},
	"core/recovery":              {"core/engineio", "core/rooms", "sdk"},
	"core/socketio":              {"core/engineio", "core/rooms", "core/recovery", "core/protocol/", "sdk"},
	"core/socketio/localcluster": {"sdk"},
	"core/config":                {"core/pluginhost", "core/protocol/siowire", "sdk"},
	"core/routing":               {"core/config", "core/socketio", "core/rooms", "core/engineio", "core/protocol/", "sdk"},
	"core/pluginhost":            {"sdk"},
	"core/admin":                 {"core/config", "core/engineio", "core/rooms", "core/socketio", "core/protocol/siowire", "sdk"},
	"core/lifecycle":             {"core/config"},
	"core/server":                {"core/", "sdk"},

	"cmd/socket-server": {"core/config", "core/server", "sdk"},
	"cmd/socketbench":   {},
	"bench/floor":       {},
	"internal/testkit":  {"sdk/plugintest", "sdk"},
	"internal/layering": {},
}

type pkg struct {
	ImportPath string
	Imports    []string
}

// listPackages lists the packages of the server's module, of the sdk's
// (a module of its own, in sdk/) and of the examples that are modules of
// their own, as an outside author's plugin is.
func listPackages(t *testing.T, root string) []pkg {
	t.Helper()
	var out []byte
	for _, dir := range []string{root, filepath.Join(root, "sdk"), filepath.Join(root, "examples", "auth-custom-go")} {
		cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
		cmd.Dir = dir
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list in %s: %v", dir, err)
		}
		out = append(out, b...)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		p.ImportPath = strings.TrimPrefix(p.ImportPath, module)
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages; is the module root right?", len(pkgs))
	}
	return pkgs
}

// rule returns the allowed list of the longest key matching path.
func rule(path string) ([]string, bool) {
	best, found := "", false
	for k := range allowed {
		match := k == path || strings.HasSuffix(k, "/") && strings.HasPrefix(path, k)
		if match && len(k) > len(best) {
			best, found = k, true
		}
	}
	return allowed[best], found
}

func permits(list []string, imp string) bool {
	for _, a := range list {
		if a == imp || strings.HasSuffix(a, "/") && strings.HasPrefix(imp, a) {
			return true
		}
	}
	return false
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if dir == filepath.Dir(dir) {
			t.Fatal("no go.mod above the test's folder")
		}
	}
}

func TestImportsFollowTheRooms(t *testing.T) {
	for _, p := range listPackages(t, moduleRoot(t)) {
		list, ok := rule(p.ImportPath)
		if !ok {
			t.Errorf("%s: a package with no rule: add it to docs/architecture.md's table and to allowed here", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			imp = strings.TrimPrefix(imp, module)
			if !permits(list, imp) {
				t.Errorf("%s imports %s, which docs/architecture.md does not allow", p.ImportPath, imp)
			}
		}
	}
}

func TestArchitectureNamesEveryPackage(t *testing.T) {
	root := moduleRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range listPackages(t, root) {
		top := strings.SplitN(p.ImportPath, "/", 2)[0]
		if top != "core" && top != "sdk" && top != "plugins" {
			continue
		}
		if !bytes.Contains(doc, []byte("`"+p.ImportPath+"`")) {
			t.Errorf("docs/architecture.md does not name `%s`", p.ImportPath)
		}
	}
}
