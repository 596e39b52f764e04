package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// socketbench table: the medians of result lines per figure name and label,
// the ratios of the first label to the two others, and targets on them.
//
//	socketbench table [--a ours] [--b node] [--c floor] [--targets FILE] FILE.jsonl...
//
// A targets file has one line per target, '#' starting a comment:
//
//	fanout-1k  server_cpu_us_per_msg  <=  1.10  floor
//
// (name, JSON field, <= or >=, the bound on the ratio a/LABEL; LABEL is b
// when left out). A figure without lines of c (only the fanout scenarios
// have a floor server) shows "-" there.

// figure is one JSON field shown for a scenario.
type figure struct {
	field, title, unit string
}

var figures = map[string][]figure{
	"fanout": {
		{"server_cpu_us_per_msg", "server CPU per delivery", "µs"},
		{"lat_p50_ms", "latency p50", "ms"},
		{"lat_p99_ms", "latency p99", "ms"},
		{"delivered_per_s", "deliveries/s", ""},
		{"lost", "lost", ""},
		{"server_runq_wait_s", "server's wait for a CPU", "s"},
	},
	"cluster": {
		{"server_cpu_us_per_msg", "server CPU per delivery (both instances)", "µs"},
		{"remote_minus_local_p50_ms", "remote p50 - local p50", "ms"},
		{"local_p50_ms", "local p50", "ms"},
		{"remote_p50_ms", "remote p50", "ms"},
		{"delivered_per_s", "deliveries/s", ""},
		{"lost", "lost", ""},
	},
	"connect": {
		{"rss_per_conn_bytes", "RSS per connection", "B"},
		{"connects_per_s", "connections/s", ""},
		{"lat_p50_ms", "handshake p50", "ms"},
		{"failed", "failed", ""},
	},
	"handshake": {
		{"handshakes_per_s", "handshakes/s", ""},
		{"lat_p50_ms", "handshake p50", "ms"},
		{"server_cpu_us_per_handshake", "server CPU per handshake", "µs"},
		{"failed", "failed", ""},
	},
}

type target struct {
	name, field, op string
	bound           float64
	text            string // the bound as written
	vs              string // the ratio's denominator label; "" = b
}

func tableMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("socketbench table", flag.ContinueOnError)
	fs.SetOutput(stderr)
	a := fs.String("a", "ours", "label of the first server (the ratio's numerator)")
	b := fs.String("b", "node", "label of the second server")
	c := fs.String("c", "floor", "label of the third server (the floor of the fanout scenarios)")
	targetsFile := fs.String("targets", "", "targets file (see bench/targets.txt)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var targets []target
	if *targetsFile != "" {
		var err error
		if targets, err = readTargets(*targetsFile); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	var lines []map[string]any
	for _, path := range fs.Args() {
		ls, err := readResults(path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		lines = append(lines, ls...)
	}
	writeTable(stdout, lines, *a, *b, *c, targets)
	return 0
}

func readResults(path string) ([]map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

func readTargets(path string) ([]target, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []target
	for n, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if (len(f) != 4 && len(f) != 5) || (f[2] != "<=" && f[2] != ">=") {
			return nil, fmt.Errorf("%s:%d: want NAME FIELD <=|>= BOUND [LABEL]", path, n+1)
		}
		v, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n+1, err)
		}
		t := target{name: f[0], field: f[1], op: f[2], bound: v, text: f[3]}
		if len(f) == 5 {
			t.vs = f[4]
		}
		out = append(out, t)
	}
	return out, nil
}

// median of the field's values among lines; NaN when there are none.
func median(lines []map[string]any, field string) (float64, int) {
	var vs []float64
	for _, l := range lines {
		if v, ok := l[field].(float64); ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return math.NaN(), 0
	}
	sort.Float64s(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], len(vs)
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, len(vs)
}

// spread is "min–max" of the field's values among lines.
func spread(lines []map[string]any, field string) string {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, l := range lines {
		if v, ok := l[field].(float64); ok {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	switch {
	case math.IsInf(lo, 1):
		return "-"
	case lo == hi:
		return fmtNum(lo)
	}
	return fmtNum(lo) + "–" + fmtNum(hi)
}

func writeTable(w io.Writer, lines []map[string]any, a, b, c string, targets []target) {
	// Figure names in order of first appearance.
	var names []string
	byName := map[string]map[string][]map[string]any{}
	scenarioOf := map[string]string{}
	for _, l := range lines {
		name, _ := l["name"].(string)
		label, _ := l["label"].(string)
		if byName[name] == nil {
			byName[name] = map[string][]map[string]any{}
			names = append(names, name)
			scenarioOf[name], _ = l["scenario"].(string)
		}
		byName[name][label] = append(byName[name][label], l)
	}
	fmt.Fprintf(w, "| figure | %s | %s | %s | %s/%s | %s/%s | target | met | generator CPU %s / %s / %s | rounds | range %s; %s; %s |\n",
		a, b, c, a, b, a, c, a, b, c, a, b, c)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---|---|---|---|---|")
	for _, name := range names {
		la, lb, lc := byName[name][a], byName[name][b], byName[name][c]
		genA, _ := median(la, "gen_cpu_pct")
		genB, _ := median(lb, "gen_cpu_pct")
		genC, _ := median(lc, "gen_cpu_pct")
		for _, fig := range figures[scenarioOf[name]] {
			ma, na := median(la, fig.field)
			mb, nb := median(lb, fig.field)
			mc, nc := median(lc, fig.field)
			if na == 0 && nb == 0 && nc == 0 {
				continue
			}
			ratioB, ratioC := ma/mb, ma/mc
			var tgts []string
			met := ""
			for _, t := range targets {
				if t.name != name || t.field != fig.field {
					continue
				}
				ratio, vs := ratioB, b
				if t.vs != "" && t.vs != b {
					ratio, vs = ma/medianOf(byName[name][t.vs], fig.field), t.vs
				}
				tgts = append(tgts, fmt.Sprintf("%s/%s %s %s", a, vs, t.op, t.text))
				ok := "yes"
				switch {
				case math.IsNaN(ratio) || math.IsInf(ratio, 0):
					ok = "?"
				case t.op == "<=" && ratio <= t.bound, t.op == ">=" && ratio >= t.bound:
				default:
					ok = "**no**"
				}
				// One miss makes the figure a miss; an unknown ratio
				// makes it unknown unless another target missed.
				if met == "" || ok == "**no**" || (ok == "?" && met == "yes") {
					met = ok
				}
			}
			unit := ""
			if fig.unit != "" {
				unit = " " + fig.unit
			}
			fmt.Fprintf(w, "| %s: %s | %s | %s | %s | %s | %s | %s | %s | %s | %d / %d / %d | %s; %s; %s |\n",
				name, fig.title, withUnit(ma, unit), withUnit(mb, unit), withUnit(mc, unit), fmtRatio(ratioB), fmtRatio(ratioC),
				strings.Join(tgts, ", "), met, fmtPcts(genA, genB, genC), na, nb, nc,
				spread(la, fig.field), spread(lb, fig.field), spread(lc, fig.field))
		}
	}
}

// medianOf is median's value alone.
func medianOf(lines []map[string]any, field string) float64 {
	m, _ := median(lines, field)
	return m
}

// withUnit is fmtNum with the unit, or "-" alone when there is no value.
func withUnit(v float64, unit string) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmtNum(v) + unit
}

func fmtPcts(vs ...float64) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		if math.IsNaN(v) {
			out[i] = "-"
		} else {
			out[i] = fmt.Sprintf("%.0f%%", v)
		}
	}
	return strings.Join(out, " / ")
}

func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

func fmtRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "-"
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}
