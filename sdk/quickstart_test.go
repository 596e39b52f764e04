package sdk_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// quickstartBlock is a marked block of README.md: the marker comment, then
// a fenced code block.
var quickstartBlock = regexp.MustCompile("(?s)<!-- quickstart:(file [^ ]+|run) -->\n```[a-z]*\n(.*?)\n```\n")

// TestREADMEQuickstart follows README.md's quick start word for word in a
// fresh folder outside this module: its files written as they are, its
// commands run in order with sh (the sdk path pointing at this folder,
// socket-server on PATH), ending with the written test, which must pass
// (CI=true: it may not skip its server tests).
func TestREADMEQuickstart(t *testing.T) {
	sh := plugintest.NeedTool(t, "sh", "install a POSIX shell")
	plugintest.NeedTool(t, "go", "install Go (https://go.dev/dl/)")
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := quickstartBlock.FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 6 {
		t.Fatalf("README.md has %d quickstart blocks; want the files main.go, config.hcl, main_test.go and the commands", len(blocks))
	}
	sdkDir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	server := quickstartServer(t, sdkDir)
	binDir := t.TempDir()
	if err := os.Symlink(server, filepath.Join(binDir, "socket-server")); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"), "CI=true", "GOWORK=off"}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "PATH" && k != "CI" && k != "GOWORK" && k != plugintest.ServerEnv {
			env = append(env, kv)
		}
	}
	dir := t.TempDir()
	var ran []string
	for _, b := range blocks {
		what, body := b[1], b[2]
		if name, ok := strings.CutPrefix(what, "file "); ok {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		script := strings.ReplaceAll(body, "/path/to/socketfleet/sdk", sdkDir)
		cmd := exec.Command(sh, "-e", "-c", script)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the quick start's commands\n%s\nfailed: %v\n%s", script, err, out)
		}
		ran = append(ran, script+"\n"+string(out))
	}
	all := strings.Join(ran, "\n")
	// validate passed by its exit status (sh -e); the written test must
	// have run and passed.
	for _, want := range []string{"socket-server validate --config config.hcl", "ok  \texample.com/auth-token"} {
		if !strings.Contains(all, want) {
			t.Errorf("the quick start's output does not say %q:\n%s", want, all)
		}
	}
}

// quickstartServer is $SOCKETFLEET_SERVER, else the server built from the
// repository around this folder.
func quickstartServer(t *testing.T, sdkDir string) string {
	t.Helper()
	if p := os.Getenv(plugintest.ServerEnv); p != "" {
		return plugintest.NeedServer(t)
	}
	root := filepath.Dir(sdkDir)
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.Contains(string(b), "module github.com/socketfleet/socketfleet\n") {
		plugintest.Unavailable(t, "the socketfleet repository around sdk/", "set "+plugintest.ServerEnv+" to a socket-server binary")
	}
	return plugintest.BuildIn(t, root, "./cmd/socket-server")
}
