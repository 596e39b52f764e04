package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestThroughTheBoundary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socket-server.ndjson")
	cfg := sdk.Config(`{"path":` + string(must(json.Marshal(path))) + `}`)
	p := plugintest.InProcess(t, &plugin{})
	plugintest.CheckContract(t, p, plugintest.Options{Config: cfg})
	if got := readLines(t, path); len(got) != 2 || got[0]["message"] != "plugintest: first" || got[0]["n"] != 1.0 || got[1]["level"] != "warning" {
		t.Fatalf("after the contract check the file holds %v", got)
	}

	// Configure again (same file): it appends.
	ctx := context.Background()
	if err := p.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	s := p.(sdk.LogSink)
	ts := time.Date(2026, 11, 27, 7, 8, 9, 123456789, time.FixedZone("CET", 3600))
	err := s.Write(ctx, []sdk.LogEntry{
		{Time: ts, Level: "info", Message: "client connected", Fields: json.RawMessage(`{"instance_id":"i-1","service":"socket-server","sid":"abc"}`)},
		{Time: ts, Level: "error", Message: "line\nbreak \"quoted\"", Fields: json.RawMessage(`{"message":"shadowed","level":3}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if n := strings.Count(string(raw), "\n"); n != 4 || !strings.HasSuffix(string(raw), "\n") {
		t.Fatalf("want 4 newline-terminated lines, got %d:\n%s", n, raw)
	}
	got := readLines(t, path)
	want := map[string]any{"@timestamp": "2026-11-27T06:08:09.123456789Z", "level": "info", "message": "client connected", "instance_id": "i-1", "service": "socket-server", "sid": "abc"}
	if !equal(got[2], want) {
		t.Errorf("line 3 = %v, want %v", got[2], want)
	}
	want = map[string]any{"@timestamp": "2026-11-27T06:08:09.123456789Z", "level": "error", "message": "line\nbreak \"quoted\"", "fields.message": "shadowed", "fields.level": 3.0}
	if !equal(got[3], want) {
		t.Errorf("line 4 = %v, want %v", got[3], want)
	}
	if !strings.HasPrefix(strings.Split(string(raw), "\n")[2], `{"@timestamp":"2026-11-27T06:08:09.123456789Z","level":"info","message":"client connected",`) {
		t.Errorf("keys not in order: %s", raw)
	}
}

func TestConfigErrors(t *testing.T) {
	p := plugintest.InProcess(t, &plugin{})
	for _, bad := range []string{`{}`, `{"path":""}`, `{"path":"-"}`, `{"path":"/nonexistent-dir/x/y.ndjson"}`} {
		if err := p.Configure(context.Background(), sdk.Config(bad)); err == nil {
			t.Errorf("Configure(%s) accepted", bad)
		}
	}
}

func equal(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
