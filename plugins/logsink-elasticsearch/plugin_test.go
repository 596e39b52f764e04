package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// setup serves a fresh plugin in-process (through the gRPC boundary),
// configures it with cfg (url added) and returns the host's client, the
// plugin itself (for its counters) and its stderr.
func setup(t *testing.T, url, cfg string) (sdk.LogSink, *plugin, *testkit.Buffer) {
	t.Helper()
	logs := &testkit.Buffer{}
	raw := &plugin{logOut: logs}
	p := plugintest.InProcess(t, raw)
	full := fmt.Sprintf(`{"url":%q%s}`, url, cfg)
	if err := p.Configure(context.Background(), sdk.Config(full)); err != nil {
		t.Fatalf("Configure(%s): %v", full, err)
	}
	t.Cleanup(func() {
		raw.mu.Lock()
		s := raw.sink
		raw.mu.Unlock()
		if s != nil {
			s.stop()
		}
	})
	return p.(sdk.LogSink), raw, logs
}

func (p *plugin) stats() stats {
	p.mu.Lock()
	s := p.sink
	p.mu.Unlock()
	return s.snapshot()
}

// entries makes n entries "<prefix>-<i>" at t with the core's usual fields.
func entries(prefix string, from, n int, t time.Time) []sdk.LogEntry {
	out := make([]sdk.LogEntry, n)
	for i := range out {
		out[i] = sdk.LogEntry{Time: t, Level: "info", Message: fmt.Sprintf("%s-%d", prefix, from+i),
			Fields: json.RawMessage(fmt.Sprintf(`{"instance_id":"i-7","service":"socket-server","n":%d}`, from+i))}
	}
	return out
}

func flush(t *testing.T, s sdk.LogSink, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// timedWrite writes and fails the test if Write took long: it must only queue.
func timedWrite(t *testing.T, s sdk.LogSink, batch []sdk.LogEntry) error {
	t.Helper()
	start := time.Now()
	err := s.Write(context.Background(), batch)
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("Write of %d entries took %s: it must not wait for Elasticsearch", len(batch), d)
	}
	return err
}

func TestContract(t *testing.T) {
	es := newFakeES(t)
	p := plugintest.InProcess(t, &plugin{logOut: &testkit.Buffer{}})
	plugintest.CheckContract(t, p, plugintest.Options{Config: sdk.Config(fmt.Sprintf(`{"url":%q,"flush_interval":"50ms"}`, es.url))})
	if n := es.storedCount("plugintest: first") + es.storedCount("plugintest: second"); n != 2 {
		t.Fatalf("after the contract's Write and Flush, %d of its 2 entries are stored", n)
	}
	_, _, _, stored := es.snapshot()
	for _, d := range stored {
		if d["message"] == "plugintest: first" && d["n"] != 1.0 {
			t.Errorf("the entry's fields are not in the document: %v", d)
		}
	}
}

// Entries go in bulk requests of at most bulk_actions; documents carry
// @timestamp, level, message and the fields; the index is the pattern on
// the entry's UTC date.
func TestBatchesAndDocuments(t *testing.T) {
	es := newFakeES(t)
	s, raw, _ := setup(t, es.url, `,"bulk_actions":100,"flush_interval":"50ms"`)
	// 23:30 at UTC-1 is the next day in UTC.
	at := time.Date(2026, 11, 26, 23, 30, 0, 123456000, time.FixedZone("X", -3600))
	for i := 0; i < 4; i++ { // as the core does: batches of 250
		if err := timedWrite(t, s, entries("batch", i*250, 250, at)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, s, 10*time.Second)
	requests, _, sizes, stored := es.snapshot()
	if len(stored) != 1000 {
		t.Fatalf("stored %d of 1000 entries", len(stored))
	}
	if requests < 10 || requests > 14 {
		t.Errorf("1000 entries took %d bulk requests (sizes %v), want about 10 of ≤ 100", requests, sizes)
	}
	for _, n := range sizes {
		if n > 100 {
			t.Errorf("a bulk request carried %d entries, bulk_actions = 100", n)
		}
	}
	want := map[string]any{"@timestamp": "2026-11-27T00:30:00.123456Z", "level": "info", "message": "batch-7", "instance_id": "i-7", "service": "socket-server", "n": 7.0}
	found := false
	for _, d := range stored {
		if d["message"] == "batch-7" {
			found = true
			if got, w := mustJSON(d), mustJSON(want); got != w {
				t.Errorf("document %s, want %s", got, w)
			}
		}
	}
	if !found {
		t.Error("batch-7 not stored")
	}
	if st := raw.stats(); st.indexed != 1000 || st.dropped != 0 || st.retried != 0 {
		t.Errorf("counters %+v", st)
	}
	t.Logf("1000 entries in %d bulk requests, sizes %v", requests, sizes)
}

// A per-item 429 is sent again until stored, exactly once; a 400 mapping
// error is dropped, counted and logged; Flush waits for all of it.
func TestPerItemErrors(t *testing.T) {
	es := newFakeES(t)
	es.itemStatus = func(doc map[string]any, attempt int) int {
		msg := doc["message"].(string)
		switch {
		case strings.HasPrefix(msg, "busy") && attempt <= 2:
			return 429
		case strings.HasPrefix(msg, "bad"):
			return 400
		}
		return 0
	}
	s, raw, logs := setup(t, es.url, `,"flush_interval":"20ms","retry_max":"100ms"`)
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	batch := append(entries("ok", 0, 5, at), entries("busy", 0, 3, at)...)
	batch = append(batch, entries("bad", 0, 1, at)...)
	batch = append(batch, entries("ok", 5, 5, at)...)
	if err := timedWrite(t, s, batch); err != nil {
		t.Fatal(err)
	}
	flush(t, s, 10*time.Second)
	for i := 0; i < 10; i++ {
		if n := es.storedCount(fmt.Sprintf("ok-%d", i)); n != 1 {
			t.Errorf("ok-%d stored %d times", i, n)
		}
	}
	for i := 0; i < 3; i++ {
		if n := es.storedCount(fmt.Sprintf("busy-%d", i)); n != 1 {
			t.Errorf("busy-%d (429 twice) stored %d times, want exactly once", i, n)
		}
	}
	if n := es.storedCount("bad-0"); n != 0 {
		t.Errorf("bad-0 stored %d times", n)
	}
	requests, _, sizes, _ := es.snapshot()
	if requests != 3 {
		t.Errorf("%d bulk requests (sizes %v), want 3: all, then the 429s twice", requests, sizes)
	}
	st := raw.stats()
	if st.indexed != 13 || st.dropped != 1 || st.retried != 6 {
		t.Errorf("counters %+v, want 13 indexed, 1 dropped, 6 retried", st)
	}
	var dropLine string
	for _, l := range logs.Lines() {
		if strings.Contains(l, "dropped 1 entries") {
			dropLine = l
		}
	}
	if !strings.Contains(dropLine, "mapper_parsing_exception") || !strings.Contains(dropLine, "1 dropped in total") {
		t.Errorf("no stderr line counting the dropped entry with its reason; stderr:\n%s", strings.Join(logs.Lines(), "\n"))
	}
	t.Logf("stderr: %s", dropLine)
}

// An outage — connection refused, then 503s, then whole-request 429s —
// loses nothing within the buffer, Write keeps returning at once, and once
// Elasticsearch answers, Flush delivers everything exactly once.
func TestOutage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused
	s, raw, logs := setup(t, "http://"+addr, `,"bulk_actions":200,"flush_interval":"20ms","retry_max":"150ms"`)
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	total := 0
	write := func(n int) {
		if err := timedWrite(t, s, entries("out", total, n, at)); err != nil {
			t.Fatalf("Write during the outage: %v", err)
		}
		total += n
	}
	for i := 0; i < 6; i++ {
		write(500)
		time.Sleep(50 * time.Millisecond)
	}
	// Flush cannot finish while Elasticsearch is away: it returns when its
	// context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err = s.Flush(ctx)
	cancel()
	if err == nil {
		t.Fatal("Flush during the outage returned nil")
	}
	if st := raw.stats(); st.indexed != 0 || st.retried == 0 {
		t.Errorf("during the outage: %+v", st)
	}

	// The node comes back, answering 503 and then 429 to whole requests.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	es := startFakeES(t, ln)
	es.mu.Lock()
	es.wholeFail = func(n int) int {
		switch {
		case n <= 3:
			return 503
		case n <= 5:
			return 429
		}
		return 0
	}
	es.mu.Unlock()
	for i := 0; i < 4; i++ {
		write(500)
		time.Sleep(20 * time.Millisecond)
	}
	flush(t, s, 15*time.Second)
	requests, refused, _, stored := es.snapshot()
	if len(stored) != total {
		t.Fatalf("stored %d of %d entries", len(stored), total)
	}
	counts := map[string]int{}
	for _, d := range stored {
		counts[d["message"].(string)]++
	}
	for i := 0; i < total; i++ {
		if n := counts[fmt.Sprintf("out-%d", i)]; n != 1 {
			t.Fatalf("out-%d stored %d times", i, n)
		}
	}
	if refused != 5 {
		t.Errorf("the fake refused %d whole requests, want 5", refused)
	}
	st := raw.stats()
	if st.indexed != uint64(total) || st.dropped != 0 {
		t.Errorf("counters %+v", st)
	}
	t.Logf("%d entries through refused connections, 3×503, 2×429: %d requests stored them; %d stderr lines, e.g. %q", total, requests, len(logs.Lines()), firstWith(logs.Lines(), "to retry"))
}

// Beyond buffer entries held, Write refuses the batch with an error (the
// core keeps it, retries, then drops and counts); it never blocks.
func TestOverflow(t *testing.T) {
	es := newFakeES(t)
	es.mu.Lock()
	down := true
	es.wholeFail = func(int) int {
		if down {
			return 503
		}
		return 0
	}
	es.mu.Unlock()
	s, raw, _ := setup(t, es.url, `,"buffer":100,"bulk_actions":50,"flush_interval":"20ms","retry_max":"50ms"`)
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	if err := timedWrite(t, s, entries("over", 0, 60, at)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // some of it in flight, retried
	err := timedWrite(t, s, entries("over", 60, 60, at))
	if err == nil || !strings.Contains(err.Error(), "buffer full") {
		t.Fatalf("Write past the buffer: %v, want a buffer-full error", err)
	}
	if err := timedWrite(t, s, entries("over", 60, 40, at)); err != nil {
		t.Fatalf("Write up to the buffer: %v", err)
	}
	if err := timedWrite(t, s, entries("over", 100, 1, at)); err == nil {
		t.Fatal("Write of one entry past a full buffer accepted")
	}
	es.mu.Lock()
	down = false
	es.mu.Unlock()
	flush(t, s, 10*time.Second)
	_, _, _, stored := es.snapshot()
	if len(stored) != 100 {
		t.Fatalf("stored %d, want the 100 accepted", len(stored))
	}
	if st := raw.stats(); st.refused != 61 || st.indexed != 100 {
		t.Errorf("counters %+v, want 61 refused, 100 indexed", st)
	}
	// Room again.
	if err := timedWrite(t, s, entries("over", 100, 100, at)); err != nil {
		t.Fatalf("Write after draining: %v", err)
	}
	flush(t, s, 10*time.Second)
}

func TestAuthAndIndexPattern(t *testing.T) {
	es := newFakeES(t)
	s, _, _ := setup(t, es.url, `,"username":"elastic","password":"changeme","flush_interval":"20ms"`)
	if err := s.Write(context.Background(), entries("auth", 0, 1, time.Now())); err != nil {
		t.Fatal(err)
	}
	flush(t, s, 5*time.Second)
	es.mu.Lock()
	got := es.auth[len(es.auth)-1]
	es.mu.Unlock()
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("elastic:changeme")); got != want {
		t.Errorf("Authorization %q, want %q", got, want)
	}

	es2 := newFakeES(t)
	s2, _, _ := setup(t, es2.url, `,"api_key":"aWQ6a2V5","flush_interval":"20ms"`)
	if err := s2.Write(context.Background(), entries("key", 0, 1, time.Now())); err != nil {
		t.Fatal(err)
	}
	flush(t, s2, 5*time.Second)
	es2.mu.Lock()
	got = es2.auth[len(es2.auth)-1]
	es2.mu.Unlock()
	if got != "ApiKey aWQ6a2V5" {
		t.Errorf("Authorization %q, want ApiKey aWQ6a2V5", got)
	}

	at := time.Date(2026, 11, 27, 23, 59, 59, 0, time.FixedZone("Y", 5*3600))
	for pattern, want := range map[string]string{
		"socket-server-%Y.%m.%d": "socket-server-2026.11.27",
		"logs-%Y-%m":             "logs-2026-11",
		"plain":                  "plain",
		"odd-%%-%q-%":            "odd-%-%q-%",
	} {
		if got := indexName(pattern, at); got != want {
			t.Errorf("indexName(%q) = %q, want %q", pattern, got, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	p := plugintest.InProcess(t, &plugin{logOut: &testkit.Buffer{}})
	for _, bad := range []string{
		`{}`,
		`{"url":""}`,
		`{"url":"http://x:9200","buffer":0}`,
		`{"url":"http://x:9200","bulk_actions":1.5}`,
		`{"url":"http://x:9200","flush_interval":"soon"}`,
		`{"url":"http://x:9200","retry_max":"-1s"}`,
		`{"url":"http://x:9200","api_key":"k","username":"u"}`,
		`{"url":"http://x:9200","index":""}`,
		`{"url":"ftp://x"}`,
	} {
		if err := p.Configure(context.Background(), sdk.Config(bad)); err == nil {
			t.Errorf("Configure(%s) accepted", bad)
		}
	}
	for _, good := range []string{
		`{"url":"http://a:9200, http://b:9200","buffer":"20000","sniff":"false","healthcheck":false}`,
		`{"url":["http://a:9200","http://b:9200"],"bulk_actions":500,"flush_interval":"2s","retry_max":"1m"}`,
	} {
		if err := p.Configure(context.Background(), sdk.Config(good)); err != nil {
			t.Errorf("Configure(%s): %v", good, err)
		}
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func firstWith(lines []string, sub string) string {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
