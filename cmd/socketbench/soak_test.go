package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// A subscriber that joined when 10 messages had been sent and left after
// message 19 was sent: it is accountable for 10..19 only.
func TestLedgerChurnWindow(t *testing.T) {
	l := newLedger(10)
	for _, s := range []int{8, 9, 10, 11, 12, 14, 15, 15, 16, 17, 18, 19, 20} {
		l.receive(s)
	}
	var missing []int
	n := l.missing(19, func(s int) { missing = append(missing, s) })
	if n != 1 || len(missing) != 1 || missing[0] != 13 {
		t.Fatalf("missing %v (n %d), want [13]", missing, n)
	}
	if l.dup != 1 || l.early != 2 || l.high != 20 {
		t.Fatalf("dup %d early %d high %d, want 1 2 20", l.dup, l.early, l.high)
	}
	// 20 arrived after the subscriber's last: received, not expected.
	if l.got != 10 {
		t.Fatalf("got %d, want 10 (10..20 but 13)", l.got)
	}
	// Nothing expected: joined after the last message it waited for.
	if n := newLedger(5).missing(4, nil); n != 0 {
		t.Fatalf("empty range: %d missing", n)
	}
	// Beyond 64 messages (several words), a duplicate far out.
	l = newLedger(0)
	for s := 0; s < 200; s++ {
		if s != 130 {
			l.receive(s)
		}
	}
	l.receive(150)
	if n := l.missing(199, nil); n != 1 || l.dup != 1 {
		t.Fatalf("missing %d dup %d, want 1 1", n, l.dup)
	}
}

func TestFaultWindows(t *testing.T) {
	var f faultWindows
	a := f.open(100)
	f.close(a, 200)
	f.open(500)
	for _, c := range []struct {
		t    int64
		want bool
	}{{99, false}, {100, true}, {199, true}, {200, false}, {499, false}, {500, true}, {1 << 40, true}} {
		if got := f.contains(c.t); got != c.want {
			t.Errorf("contains(%d) = %v, want %v", c.t, got, c.want)
		}
	}
}

func TestSlope(t *testing.T) {
	xs := []float64{0, 10, 20, 30, 40}
	ys := []float64{5, 7, 9, 11, 13}
	if b, se := slopeSE(xs, ys); math.Abs(b-0.2) > 1e-12 || se > 1e-9 {
		t.Fatalf("slope %v se %v, want 0.2 0", b, se)
	}
	if b := slope([]float64{1}, []float64{3}); b != 0 {
		t.Fatalf("one point: %v", b)
	}
}

func TestJudgeGrowth(t *testing.T) {
	var ts, flat, leak, saw []float64
	for i := 0; i <= 180; i++ { // 30 min at 10 s
		x := float64(i * 10)
		ts = append(ts, x)
		flat = append(flat, 100e6)
		// 10% of ~100 MB per 10 min
		leak = append(leak, 100e6+x*10e6/600)
		// a big sawtooth around a flat mean: noise, not growth
		saw = append(saw, 100e6+float64(i%7)*20e6)
	}
	if g := judgeGrowth("a", "rss", ts, flat); g.Grows || g.SlopePerS != 0 {
		t.Fatalf("flat: %+v", g)
	}
	g := judgeGrowth("a", "rss", ts, leak)
	if !g.Grows {
		t.Fatalf("leak not caught: %+v", g)
	}
	// The second half runs from 900 s: mean 100e6 + 1350*10e6/600.
	if want := 10e6 / 600 * 600 / (100e6 + 1350*10e6/600); math.Abs(g.RelPer10Min-want) > 1e-9 {
		t.Fatalf("rel %v, want %v", g.RelPer10Min, want)
	}
	if g := judgeGrowth("a", "heap", ts, saw); g.Grows {
		t.Fatalf("sawtooth judged growing: %+v", g)
	}
	// 3% per 10 min: under the limit.
	var slow []float64
	for _, x := range ts {
		slow = append(slow, 100e6+x*3e6/600)
	}
	if g := judgeGrowth("a", "rss", ts, slow); g.Grows {
		t.Fatalf("3%%/10 min judged growing: %+v", g)
	}
	rows := []sample{{T: 0, Instance: "b", FDs: 10}}
	for i := 0; i <= 12; i++ {
		rows = append(rows, sample{T: float64(10 * i), Instance: "a", FDs: int64(10 + i)})
	}
	gs := judgeAll(rows)
	if len(gs) != 8 || gs[0].Instance != "a" || !gs[3].Grows || gs[3].Series != "fds" || gs[3].Samples != 7 {
		t.Fatalf("judgeAll: %+v", gs)
	}
	// Too short to judge: three samples in the second half.
	if g := judgeGrowth("a", "fds", []float64{0, 10, 20, 30, 40}, []float64{1, 2, 3, 4, 5}); g.Grows || g.Samples != 3 {
		t.Fatalf("short run judged: %+v", g)
	}
}

func TestWriteCSV(t *testing.T) {
	var b bytes.Buffer
	rows := []sample{{T: 10.04, Instance: "a", RSS: 1 << 20, Heap: 2, Goroutines: 3, FDs: 4, Connections: 5, PluginRestarts: 6, Lost: 7, LostInFaults: 8, Duplicated: 9, Dropped: 10}}
	if err := writeCSV(&b, true, rows); err != nil {
		t.Fatal(err)
	}
	if err := writeCSV(&b, false, rows[:1]); err != nil {
		t.Fatal(err)
	}
	want := csvHeader + "\n" + "10.0,a,1048576,2,3,4,5,6,7,8,9,10\n" + "10.0,a,1048576,2,3,4,5,6,7,8,9,10\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	if n := len(strings.Split(csvHeader, ",")); n != 12 {
		t.Fatalf("header has %d columns", n)
	}
}

func TestParseDropped(t *testing.T) {
	in := "# HELP x\n# TYPE cluster_messages_dropped_total counter\n" +
		`socketfleet_cluster_messages_dropped_total{instance="a"} 3` + "\n" +
		"cluster_messages_dropped_total 4\nother_total 9\n"
	n, err := parseDropped(strings.NewReader(in))
	if err != nil || n != 7 {
		t.Fatalf("%d %v, want 7", n, err)
	}
	if _, err := parseDropped(strings.NewReader("x 1\n")); err == nil {
		t.Fatal("no series: no error")
	}
}

func TestWriteSVG(t *testing.T) {
	rows := []sample{{T: 0, Instance: "a", RSS: 1 << 20}, {T: 0, Instance: "b", RSS: 2 << 20}, {T: 10, Instance: "a", RSS: 3 << 20, Lost: 1}, {T: 10, Instance: "b", RSS: 2 << 20}}
	var b bytes.Buffer
	if err := writeSVG(&b, rows, [][2]float64{{2, 4}}, "t<1>"); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if !strings.HasPrefix(s, "<svg") || !strings.Contains(s, "t&lt;1&gt;") || strings.Count(s, "<polyline") != 4*2+4 {
		t.Fatalf("svg: %d polylines\n%s", strings.Count(s, "<polyline"), s)
	}
}

// account splits a subscriber's missing messages by when their write began:
// inside a fault window, outside, or not sent at all (a failed write).
func TestAccountFaults(t *testing.T) {
	r := &soakRun{lostSeqs: map[int]bool{}}
	// seq i written at 100*i; seq 3's write failed.
	for i := 0; i < 10; i++ {
		r.sentAt = append(r.sentAt, int64(100*i))
	}
	r.sentAt[3] = -1
	w := r.faults.open(450)
	r.faults.close(w, 650) // seqs 5 and 6
	// A subscriber that joined when 2 had been sent and left after 8.
	l := newLedger(2)
	for _, s := range []int{1, 2, 4, 7, 7, 8, 9} {
		l.receive(s)
	}
	r.account(l, 8) // missing: 3 (not sent), 5, 6 (fault)
	// A second subscriber, the whole run, missing 0 and 5.
	l2 := newLedger(0)
	for s := 1; s < 10; s++ {
		if s != 5 {
			l2.receive(s)
		}
	}
	r.account(l2, 9)
	if r.lost != 1 || r.lostInFaults != 3 || len(r.lostSeqs) != 2 || r.dup != 1 || r.early != 1 || r.finalized != 2 {
		t.Fatalf("lost %d in faults %d (distinct %v) dup %d early %d finalized %d; want 1 3 (2) 1 1 2",
			r.lost, r.lostInFaults, r.lostSeqs, r.dup, r.early, r.finalized)
	}
	if r.got != 5+8 {
		t.Fatalf("got %d, want 13", r.got)
	}
}
