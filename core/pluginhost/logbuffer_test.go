package pluginhost_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/sdk"
)

type sinkLine struct {
	Write   int    `json:"write"`
	Entries int    `json:"entries"`
	First   string `json:"first"`
	Flush   bool   `json:"flush"`
}

func readSink(t *testing.T, path string) (lines []sinkLine) {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		var l sinkLine
		if err := json.Unmarshal(s.Bytes(), &l); err != nil {
			t.Fatalf("%s: %v", s.Bytes(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

func sinkTotals(lines []sinkLine) (entries, writes, flushes int) {
	for _, l := range lines {
		if l.Flush {
			flushes++
		} else {
			writes++
			entries += l.Entries
		}
	}
	return
}

func collectSink(t *testing.T, h *pluginhost.Host, extra string) (*pluginhost.Plugin, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sink.jsonl")
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindLogSink, Name: "collect"})
	cfg := fmt.Sprintf(`{"out":%q%s}`, out, extra)
	if err := p.Configure(ctx5(t), sdk.Config(cfg)); err != nil {
		t.Fatal(err)
	}
	return p, out
}

func entry(i int) sdk.LogEntry {
	return sdk.LogEntry{Time: time.Now(), Level: "info", Message: fmt.Sprint("entry ", i), Fields: []byte(`{}`)}
}

func TestLogBufferBatchesAndFlush(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	p, out := collectSink(t, h, "")
	b := p.LogBuffer(pluginhost.BufferOptions{FlushEvery: 5 * time.Second})
	defer b.Close()
	const n = 2000
	for i := range n {
		if !b.Add(entry(i)) {
			t.Fatalf("Add %d refused", i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	lines := readSink(t, out)
	entries, writes, flushes := sinkTotals(lines)
	st := b.Stats()
	t.Logf("%d entries: %d Write batches, stats %+v", n, writes, st)
	if entries != n || flushes != 1 || !lines[len(lines)-1].Flush || writes > 8 || lines[0].First != "entry 0" {
		t.Fatalf("sink saw %d entries in %d writes, %d flushes", entries, writes, flushes)
	}
	if st.Written != n || st.Batches != uint64(writes) || st.Dropped != 0 || st.Queued != 0 || st.Flushes != 1 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestLogBufferFlushEvery(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	p, out := collectSink(t, h, "")
	b := p.LogBuffer(pluginhost.BufferOptions{FlushEvery: 100 * time.Millisecond})
	defer b.Close()
	start := time.Now()
	for i := range 3 {
		b.Add(entry(i))
	}
	eventually(t, 2*time.Second, "a batch of 3", func() bool {
		e, w, _ := sinkTotals(readSink(t, out))
		return e == 3 && w == 1
	})
	if took := time.Since(start); took < 90*time.Millisecond {
		t.Fatalf("written after %s, before FlushEvery", took)
	}
}

func TestLogBufferRetriesThenDrops(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	// Two failures: retried, written.
	p, out := collectSink(t, h, `,"fail_writes":2`)
	b := p.LogBuffer(pluginhost.BufferOptions{})
	for i := range 10 {
		b.Add(entry(i))
	}
	if err := b.Flush(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := sinkTotals(readSink(t, out)); e != 10 {
		t.Fatalf("entries = %d", e)
	}
	b.Close()

	// Three failures: the batch is dropped, counted, and Flush says so.
	p2, out2 := collectSink(t, h, `,"fail_writes":3`)
	b2 := p2.LogBuffer(pluginhost.BufferOptions{})
	defer b2.Close()
	for i := range 10 {
		b2.Add(entry(i))
	}
	err := b2.Flush(ctx5(t))
	t.Logf("Flush: %v", err)
	if err == nil {
		t.Fatal("Flush hid dropped entries")
	}
	if st := b2.Stats(); st.Dropped != 10 || st.Written != 0 {
		t.Fatalf("Stats = %+v", st)
	}
	b2.Add(entry(10))
	if err := b2.Flush(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := sinkTotals(readSink(t, out2)); e != 1 {
		t.Fatalf("entries = %d", e)
	}
}

func TestLogBufferWhileDown(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	p, out := collectSink(t, h, "")
	const queue = 50
	b := p.LogBuffer(pluginhost.BufferOptions{Queue: queue, MaxBatch: 20, FlushEvery: 10 * time.Millisecond})
	defer b.Close()

	syscall.Kill(p.State().PID, syscall.SIGKILL)
	eventually(t, 2*time.Second, "plugin down", func() bool { return !p.State().Up })
	accepted := 0
	for i := range 80 {
		if b.Add(entry(i)) {
			accepted++
		}
	}
	st := b.Stats()
	t.Logf("while down: accepted %d of 80 with Queue=%d, stats %+v", accepted, queue, st)
	if accepted < queue-1 || accepted > queue+1 || st.Dropped != uint64(80-accepted) {
		t.Fatalf("accepted %d, Stats %+v", accepted, st)
	}
	// Flush waits for the restart (config re-applied: same out file).
	if err := b.Flush(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	if e, _, f := sinkTotals(readSink(t, out)); e != accepted || f != 1 {
		t.Fatalf("sink: %d entries, %d flushes; want %d", e, f, accepted)
	}
	if st := p.State(); st.Restarts != 1 {
		t.Fatalf("State = %+v", st)
	}
}
