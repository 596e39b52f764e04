package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// The built binary, launched as the core launches it: its stdout belongs to
// go-plugin, the lines go to the file.
func TestSubprocess(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "logsink-stdout")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	p, cleanup := plugintest.Subprocess(t, bin, sdk.KindLogSink)
	defer cleanup()
	path := filepath.Join(dir, "out.ndjson")
	plugintest.CheckContract(t, p, plugintest.Options{Config: sdk.Config(`{"path":` + string(must(json.Marshal(path))) + `}`)})
	if got := readLines(t, path); len(got) != 2 || got[1]["message"] != "plugintest: second" {
		t.Fatalf("file holds %v", got)
	}
}
