package main

// The pieces of the soak scenario that can be tested alone: a subscriber's
// ledger of numbered messages (lost and duplicated, with churn), the fault
// windows, the CSV of samples, the least-squares growth verdict and the SVG.

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ledger is what one subscriber connection received of the publisher's
// numbered messages (seq 0, 1, 2, ...).
//
// Accounting rule. The publisher stores published = seq+1 before it writes
// message seq. A subscriber reads published once the ack of its join has
// arrived: that is first, the first seq it must receive, because every
// message from first on was written after the server had put the socket in
// the room (on either instance: the room is local and the message reaches
// the other instance only after the publisher's instance got it). A
// subscriber that leaves (churn) reads published-1 = last when it decides
// to go, then waits (bounded) until it has received last or a later one
// before it closes: messages are delivered in order on one path (local, or
// through Redis), so when last has arrived every message in [first, last]
// has arrived or never will. The expected messages are exactly
// [first, last]; one missing there is lost, one received twice is
// duplicated, one below first that still arrives is counted apart (early)
// and neither expected nor lost.
type ledger struct {
	first int
	bits  []uint64 // bit i: seq first+i received
	got   uint64   // distinct expected messages received
	dup   uint64
	early uint64
	high  int // highest seq received, -1 before any
}

func newLedger(first int) *ledger { return &ledger{first: first, high: -1} }

// receive notes one arrival of seq.
func (l *ledger) receive(seq int) {
	if seq > l.high {
		l.high = seq
	}
	if seq < l.first {
		l.early++
		return
	}
	i := seq - l.first
	for i/64 >= len(l.bits) {
		l.bits = append(l.bits, 0)
	}
	w, b := i/64, uint64(1)<<(i%64)
	if l.bits[w]&b != 0 {
		l.dup++
		return
	}
	l.bits[w] |= b
	l.got++
}

// has says whether seq (>= first) was received.
func (l *ledger) has(seq int) bool {
	i := seq - l.first
	if i < 0 || i/64 >= len(l.bits) {
		return false
	}
	return l.bits[i/64]&(uint64(1)<<(i%64)) != 0
}

// missing calls fn for every seq in [first, last] that was not received
// and returns how many there were.
func (l *ledger) missing(last int, fn func(seq int)) int {
	n := 0
	for s := l.first; s <= last; s++ {
		if !l.has(s) {
			n++
			if fn != nil {
				fn(s)
			}
		}
	}
	return n
}

// faultWindows are the spans (generator monotonic ns) in which a fault was
// under way: from the kill (or the Redis stop) until the instances were
// whole again plus a margin. end < 0: still open.
type faultWindows struct {
	mu sync.Mutex
	w  [][2]int64
}

func (f *faultWindows) open(at int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.w = append(f.w, [2]int64{at, -1})
	return len(f.w) - 1
}

func (f *faultWindows) close(i int, at int64) {
	f.mu.Lock()
	f.w[i][1] = at
	f.mu.Unlock()
}

// contains says whether t falls in a window (an open one reaches forever).
func (f *faultWindows) contains(t int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.w {
		if t >= w[0] && (w[1] < 0 || t < w[1]) {
			return true
		}
	}
	return false
}

// sample is one row of the soak's CSV: one instance at one moment, with
// the run's cumulative counts.
type sample struct {
	T              float64 // seconds since the load started
	Instance       string
	RSS            int64
	Heap           int64
	Goroutines     int64
	FDs            int64
	Connections    int64
	PluginRestarts int64
	Lost           uint64 // deliveries lost outside fault windows
	LostInFaults   uint64 // deliveries lost in fault windows
	Duplicated     uint64
	Dropped        int64 // cluster_messages_dropped_total, all instances together
}

var csvHeader = "t_s,instance,rss_bytes,heap_bytes,goroutines,fds,connections,plugin_restarts,lost,lost_in_faults,duplicated,dropped"

// writeCSV writes the header (when header is true) and the rows.
func writeCSV(w io.Writer, header bool, rows []sample) error {
	var b strings.Builder
	if header {
		b.WriteString(csvHeader + "\n")
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "%.1f,%s,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d\n", r.T, r.Instance, r.RSS, r.Heap,
			r.Goroutines, r.FDs, r.Connections, r.PluginRestarts, r.Lost, r.LostInFaults, r.Duplicated, r.Dropped)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// slope is the least-squares slope of ys over xs (0 with fewer than two
// distinct xs).
func slope(xs, ys []float64) float64 {
	b, _ := slopeSE(xs, ys)
	return b
}

// slopeSE is the least-squares slope and its standard error (0 with fewer
// than three points).
func slopeSE(xs, ys []float64) (b, se float64) {
	n := float64(len(xs))
	if len(xs) < 2 {
		return 0, 0
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx, my = mx/n, my/n
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx == 0 {
		return 0, 0
	}
	b = sxy / sxx
	if len(xs) > 2 {
		var rss float64
		for i := range xs {
			e := ys[i] - my - b*(xs[i]-mx)
			rss += e * e
		}
		se = math.Sqrt(rss / (n - 2) / sxx)
	}
	return b, se
}

// growthLimit is the verdict's threshold: a series grows without bound when
// its least-squares slope over the second half of the run is above
// growthLimit of its mean (over that half) per growthPer seconds, and the
// slope is told from noise: slope - 2 standard errors > 0 (about a 95%
// one-sided test; the Go heap's sawtooth alone gives steep slopes over a
// few minutes).
const (
	growthLimit = 0.05
	growthPer   = 600.0
	// With fewer samples in the second half (a run under 2 minutes at
	// 10 s) growth is not judged.
	minGrowthSamples = 6
)

// growth is the verdict on one series of one instance.
type growth struct {
	Instance string  `json:"instance"`
	Series   string  `json:"series"`
	Mean     float64 `json:"mean"`
	// Slope per second and per growthPer relative to the mean.
	SlopePerS   float64 `json:"slope_per_s"`
	SlopeSE     float64 `json:"slope_se"`
	RelPer10Min float64 `json:"rel_per_10min"`
	Samples     int     `json:"samples"` // in the second half; fewer than minGrowthSamples: not judged
	Grows       bool    `json:"grows"`
}

// judgeGrowth fits the second half (by time) of (ts, ys).
func judgeGrowth(instance, series string, ts, ys []float64) growth {
	g := growth{Instance: instance, Series: series}
	if len(ts) == 0 {
		return g
	}
	mid := ts[0] + (ts[len(ts)-1]-ts[0])/2
	var hx, hy []float64
	for i := range ts {
		if ts[i] >= mid {
			hx, hy = append(hx, ts[i]), append(hy, ys[i])
		}
	}
	for _, y := range hy {
		g.Mean += y
	}
	g.Mean /= float64(len(hy))
	g.SlopePerS, g.SlopeSE = slopeSE(hx, hy)
	if g.Mean > 0 {
		g.RelPer10Min = g.SlopePerS * growthPer / g.Mean
	} else if g.SlopePerS > 0 {
		g.RelPer10Min = math.Inf(1)
	}
	g.Samples = len(hx)
	g.Grows = len(hx) >= minGrowthSamples && g.RelPer10Min > growthLimit && g.SlopePerS-2*g.SlopeSE > 0
	return g
}

// seriesOf picks one field of one instance's samples.
var seriesFields = []struct {
	name, unit string
	scale      float64
	get        func(s sample) float64
}{
	{"rss", "MiB", 1 << 20, func(s sample) float64 { return float64(s.RSS) }},
	{"heap", "MiB", 1 << 20, func(s sample) float64 { return float64(s.Heap) }},
	{"goroutines", "", 1, func(s sample) float64 { return float64(s.Goroutines) }},
	{"fds", "", 1, func(s sample) float64 { return float64(s.FDs) }},
}

// judgeAll runs judgeGrowth on every series of every instance.
func judgeAll(rows []sample) []growth {
	var out []growth
	for _, inst := range instancesOf(rows) {
		for _, f := range seriesFields {
			var ts, ys []float64
			for _, r := range rows {
				if r.Instance == inst {
					ts, ys = append(ts, r.T), append(ys, f.get(r))
				}
			}
			out = append(out, judgeGrowth(inst, f.name, ts, ys))
		}
	}
	return out
}

func instancesOf(rows []sample) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range rows {
		if !seen[r.Instance] {
			seen[r.Instance] = true
			out = append(out, r.Instance)
		}
	}
	sort.Strings(out)
	return out
}

// writeSVG draws one panel per series (both instances in each) and one of
// the cumulative loss counts, with the fault windows shaded.
func writeSVG(w io.Writer, rows []sample, faults [][2]float64, title string) error {
	const pw, ph, left, top, gap = 520.0, 170.0, 70.0, 40.0, 50.0
	var panels []svgPanel
	insts := instancesOf(rows)
	for _, f := range seriesFields {
		p := svgPanel{name: f.name, unit: f.unit, scale: f.scale, series: map[string]func(s sample) float64{}}
		for _, in := range insts {
			p.series[in] = f.get
		}
		panels = append(panels, p)
	}
	panels = append(panels, svgPanel{name: "lost / dup / dropped (cumulative)", runWide: true, scale: 1, series: map[string]func(s sample) float64{
		"lost":           func(s sample) float64 { return float64(s.Lost) },
		"lost_in_faults": func(s sample) float64 { return float64(s.LostInFaults) },
		"duplicated":     func(s sample) float64 { return float64(s.Duplicated) },
		"dropped":        func(s sample) float64 { return float64(s.Dropped) },
	}})
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}
	tmax := 1.0
	for _, r := range rows {
		tmax = math.Max(tmax, r.T)
	}
	height := top + float64(len(panels))*(ph+gap)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", left+pw+160, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="20" font-size="14">%s</text>`+"\n", xmlEscape(title))
	for pi, p := range panels {
		y0 := top + float64(pi)*(ph+gap)
		names := make([]string, 0, len(p.series))
		for k := range p.series {
			names = append(names, k)
		}
		sort.Strings(names)
		ymax := 0.0
		for _, name := range names {
			for _, r := range rows {
				if !p.includes(r, name, insts) {
					continue
				}
				ymax = math.Max(ymax, p.series[name](r)/p.scale)
			}
		}
		if ymax == 0 {
			ymax = 1
		}
		ymax *= 1.1
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="12">%s %s</text>`+"\n", left, y0-6, p.name, p.unit)
		for _, f := range faults {
			f[0], f[1] = math.Min(f[0], tmax), math.Min(f[1], tmax)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.0f" fill="#fdd" />`+"\n",
				left+f[0]/tmax*pw, y0, math.Max(1, (f[1]-f[0])/tmax*pw), ph)
		}
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#888"/>`+"\n", left, y0, pw, ph)
		for i := 0; i <= 4; i++ {
			v := ymax * float64(i) / 4
			y := y0 + ph - ph*float64(i)/4
			fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-4, y+4, strconv.FormatFloat(v, 'g', 4, 64))
			t := tmax * float64(i) / 4
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%.0fs</text>`+"\n", left+pw*float64(i)/4, y0+ph+14, t)
		}
		for ci, name := range names {
			var pts []string
			for _, r := range rows {
				if !p.includes(r, name, insts) {
					continue
				}
				x := left + r.T/tmax*pw
				y := y0 + ph - p.series[name](r)/p.scale/ymax*ph
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
			}
			c := colors[ci%len(colors)]
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", c, strings.Join(pts, " "))
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="%s">%s</text>`+"\n", left+pw+8, y0+14+float64(ci)*14, c, xmlEscape(name))
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// svgPanel is one chart: a line per instance, or (runWide) a line per
// run-wide count, read from the first instance's rows, which carry them.
type svgPanel struct {
	name    string
	unit    string
	scale   float64
	runWide bool
	series  map[string]func(s sample) float64
}

func (p svgPanel) includes(r sample, line string, insts []string) bool {
	if p.runWide {
		return r.Instance == insts[0]
	}
	return r.Instance == line
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
