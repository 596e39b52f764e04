package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// The built binary, launched as the core launches it: its stdout belongs to
// go-plugin, the lines go to the file.
func TestSubprocess(t *testing.T) {
	dir := t.TempDir()
	bin := plugintest.Build(t, ".")
	p, cleanup := plugintest.Subprocess(t, bin, sdk.KindLogSink)
	defer cleanup()
	path := filepath.Join(dir, "out.ndjson")
	plugintest.CheckContract(t, p, plugintest.Options{Config: sdk.Config(`{"path":` + string(must(json.Marshal(path))) + `}`)})
	if got := readLines(t, path); len(got) != 2 || got[1]["message"] != "plugintest: second" {
		t.Fatalf("file holds %v", got)
	}
}
