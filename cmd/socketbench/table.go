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
// the ratio of the two labels, and targets on that ratio.
//
//	socketbench table [--a ours] [--b node] [--targets FILE] FILE.jsonl...
//
// A targets file has one line per target, '#' starting a comment:
//
//	fanout-1k  server_cpu_us_per_msg  <=  0.20
//
// (name, JSON field, <= or >=, the bound on a/b).

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
}

func tableMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("socketbench table", flag.ContinueOnError)
	fs.SetOutput(stderr)
	a := fs.String("a", "ours", "label of the first server (the ratio's numerator)")
	b := fs.String("b", "node", "label of the second server")
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
	writeTable(stdout, lines, *a, *b, targets)
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
		if len(f) != 4 || (f[2] != "<=" && f[2] != ">=") {
			return nil, fmt.Errorf("%s:%d: want NAME FIELD <=|>= BOUND", path, n+1)
		}
		v, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n+1, err)
		}
		out = append(out, target{f[0], f[1], f[2], v, f[3]})
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

func writeTable(w io.Writer, lines []map[string]any, a, b string, targets []target) {
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
	fmt.Fprintf(w, "| figure | %s | %s | %s/%s | target | met | generator CPU %s / %s | rounds | range %s; %s |\n", a, b, a, b, a, b, a, b)
	fmt.Fprintln(w, "|---|---:|---:|---:|---|---|---|---|---|")
	for _, name := range names {
		la, lb := byName[name][a], byName[name][b]
		genA, _ := median(la, "gen_cpu_pct")
		genB, _ := median(lb, "gen_cpu_pct")
		for _, fig := range figures[scenarioOf[name]] {
			ma, na := median(la, fig.field)
			mb, nb := median(lb, fig.field)
			if na == 0 && nb == 0 {
				continue
			}
			ratio := ma / mb
			tgt, met := "", ""
			for _, t := range targets {
				if t.name == name && t.field == fig.field {
					tgt = t.op + " " + t.text
					switch {
					case math.IsNaN(ratio) || math.IsInf(ratio, 0):
						met = "?"
					case t.op == "<=" && ratio <= t.bound, t.op == ">=" && ratio >= t.bound:
						met = "yes"
					default:
						met = "**no**"
					}
				}
			}
			unit := ""
			if fig.unit != "" {
				unit = " " + fig.unit
			}
			fmt.Fprintf(w, "| %s: %s | %s%s | %s%s | %s | %s | %s | %.0f%% / %.0f%% | %d / %d | %s; %s |\n",
				name, fig.title, fmtNum(ma), unit, fmtNum(mb), unit, fmtRatio(ratio), tgt, met, genA, genB, na, nb,
				spread(la, fig.field), spread(lb, fig.field))
		}
	}
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
