package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHistQuantiles(t *testing.T) {
	var h hist
	for us := 1; us <= 100000; us++ { // uniform 1 µs .. 100 ms
		h.record(time.Duration(us) * time.Microsecond)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 50000}, {0.9, 90000}, {0.99, 99000}} {
		if got := h.quantile(c.q); math.Abs(got-c.want)/c.want > 0.02 {
			t.Errorf("q%.2f = %.0f µs, want %.0f within 2%%", c.q, got, c.want)
		}
	}
	if st := h.stats(); st.Max != 100 || st.Count != 100000 {
		t.Errorf("max %v ms count %d", st.Max, st.Count)
	}
	for us := uint64(0); us < 1<<30; us = us*2 + 1 { // buckets are monotonic
		if b := histBucket(us); b > 0 && histValue(b) < histValue(b-1) {
			t.Fatalf("bucket %d of %d µs out of order", b, us)
		}
	}
	var empty hist
	if empty.quantile(0.5) != 0 {
		t.Error("empty histogram")
	}
}

func TestScanMessage(t *testing.T) {
	p := appendMessage(nil, `"bench"`, 3, 12345, 987654321, 128)
	if len(p) != 128 {
		t.Errorf("padded to %d bytes, want 128", len(p))
	}
	if !bytes.HasPrefix(p, []byte(`42["publish",{"room":"bench","pub":3,"seq":12345,"ts":987654321,"pad":"x`)) {
		t.Errorf("%s", p)
	}
	pub, seq, ts, ok := scanMessage(p[1:]) // as received: the Engine.IO type stripped
	if !ok || pub != 3 || seq != 12345 || ts != 987654321 {
		t.Errorf("scan: %d %d %d %v", pub, seq, ts, ok)
	}
	// Node re-serialises the object; the same keys in the same order scan alike.
	if _, _, _, ok := scanMessage([]byte(`2["publish",{"room":"x","pub":0,"seq":1,"ts":2}]`)); !ok {
		t.Error("compact form")
	}
	for _, bad := range []string{`3["publish"]`, `2["other",{}]`, `2["publish",{"pub":1,"seq":"a","ts":1}]`, ``} {
		if _, _, _, ok := scanMessage([]byte(bad)); ok {
			t.Errorf("%q scanned", bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() { scanMessage(p[1:]) }); n != 0 {
		t.Errorf("scanMessage allocates %v times", n)
	}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = appendMessage(buf[:0], `"bench"`, 0, 1, 2, 128) }); n != 0 {
		t.Errorf("appendMessage allocates %v times", n)
	}
}

func TestProcSelf(t *testing.T) {
	pid := os.Getpid()
	ppid, cpu, err := procStat(pid)
	if err != nil || ppid != os.Getppid() || cpu < 0 {
		t.Fatalf("procStat: %d %v %v", ppid, cpu, err)
	}
	if rss, err := procRSS(pid); err != nil || rss <= 0 {
		t.Fatalf("procRSS: %d %v", rss, err)
	}
	if ps := withDescendants([]int{os.Getppid()}); len(ps) < 2 || ps[0] != os.Getppid() {
		t.Errorf("descendants of our parent %v should include us", ps)
	}
	m := startCPU([]int{pid})
	for t0 := time.Now(); time.Since(t0) < 30*time.Millisecond; {
	}
	if m.used() < 0 || selfCPU() <= 0 {
		t.Error("cpu meters")
	}
}

func TestTable(t *testing.T) {
	dir := t.TempDir()
	lines := strings.Join([]string{
		`{"scenario":"fanout","name":"fanout-1k","label":"ours","server_cpu_us_per_msg":4,"lat_p50_ms":1,"lat_p99_ms":2,"delivered_per_s":30000,"lost":0,"gen_cpu_pct":20}`,
		`{"scenario":"fanout","name":"fanout-1k","label":"node","server_cpu_us_per_msg":20,"lat_p50_ms":5,"lat_p99_ms":20,"delivered_per_s":30000,"lost":0,"gen_cpu_pct":22}`,
		`{"scenario":"fanout","name":"fanout-1k","label":"ours","server_cpu_us_per_msg":6,"lat_p50_ms":1,"lat_p99_ms":2,"delivered_per_s":30000,"lost":0,"gen_cpu_pct":20}`,
		`{"scenario":"fanout","name":"fanout-1k","label":"ours","server_cpu_us_per_msg":100,"lat_p50_ms":1,"lat_p99_ms":2,"delivered_per_s":30000,"lost":0,"gen_cpu_pct":20}`,
		`{"scenario":"fanout","name":"fanout-1k","label":"floor","server_cpu_us_per_msg":5,"lat_p50_ms":1,"lat_p99_ms":1.6,"delivered_per_s":30000,"lost":0,"gen_cpu_pct":19}`,
		`{"scenario":"connect","name":"idle-10k","label":"ours","rss_per_conn_bytes":8000,"connects_per_s":6000,"lat_p50_ms":3,"failed":0,"gen_cpu_pct":50}`,
		`{"scenario":"connect","name":"idle-10k","label":"node","rss_per_conn_bytes":16000,"connects_per_s":1500,"lat_p50_ms":9,"failed":0,"gen_cpu_pct":30}`,
	}, "\n")
	res := filepath.Join(dir, "r.jsonl")
	targets := filepath.Join(dir, "targets.txt")
	os.WriteFile(res, []byte(lines+"\n"), 0o644)
	os.WriteFile(targets, []byte("# comment\nfanout-1k server_cpu_us_per_msg <= 0.2\nfanout-1k server_cpu_us_per_msg <= 1.1 floor\nfanout-1k lat_p99_ms <= 1.1 floor\nfanout-1k lat_p99_ms <= 1 node\nidle-10k connects_per_s >= 3 # issue\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := tableMain([]string{"--targets", targets, res}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		// median of 4, 6, 100; 6/5 = 1.2 misses the floor target
		"| fanout-1k: server CPU per delivery | 6.00 µs | 20.0 µs | 5.00 µs | 0.30 | 1.20 | ours/node <= 0.2, ours/floor <= 1.1 | **no** | 20% / 22% / 19% | 3 / 1 / 1 | 4.00–100; 20.0; 5.00 |",
		"| fanout-1k: latency p99 | 2.00 ms | 20.0 ms | 1.60 ms | 0.10 | 1.25 | ours/floor <= 1.1, ours/node <= 1 | **no** |",
		"| fanout-1k: latency p50 | 1.00 ms | 5.00 ms | 1.00 ms | 0.20 | 1.00 |  |  |",
		"| idle-10k: connections/s | 6000 | 1500 | - | 4.00 | - | ours/node >= 3 | yes | 50% / 30% / - | 1 / 1 / 0 |",
		"| idle-10k: RSS per connection | 8000 B | 16000 B | - | 0.50 | - |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}
