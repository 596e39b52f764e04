package config

import (
	"fmt"
	"math"
	"math/big"
	"strings"
)

// ParseSize parses a byte size: a plain number of bytes ("1048576") or a
// number with a unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB
// (powers of 1024), case-insensitive, optional space ("1MB", "1.5 MiB").
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("%q is not a size; use a number of bytes or a number with a unit such as \"512B\", \"16KB\", \"1MB\", \"1MiB\"", s)
	}
	var mult int64
	switch unit {
	case "", "b":
		mult = 1
	case "kb":
		mult = 1000
	case "mb":
		mult = 1000 * 1000
	case "gb":
		mult = 1000 * 1000 * 1000
	case "kib":
		mult = 1 << 10
	case "mib":
		mult = 1 << 20
	case "gib":
		mult = 1 << 30
	default:
		return 0, fmt.Errorf("unknown size unit %q in %q; use B, KB, MB, GB, KiB, MiB or GiB", t[i:], s)
	}
	f, _, err := big.ParseFloat(num, 10, 128, big.ToNearestEven)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: bad number %q", s, num)
	}
	f.Mul(f, new(big.Float).SetInt64(mult))
	if !f.IsInt() {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	n, acc := f.Int64()
	if acc != big.Exact {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n, nil
}

// ParseRate parses "N/s" or "N/m" (N > 0, may be fractional) into events per
// second. "min" and "sec" are accepted as unit spellings too.
func ParseRate(s string) (float64, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("%q is not a rate; write N/s or N/m, e.g. \"10/s\" or \"30/m\"", s)
	}
	var n float64
	if _, err := fmt.Sscanf(strings.TrimSpace(num), "%g", &n); err != nil || strings.ContainsAny(num, "eE") {
		return 0, fmt.Errorf("%q is not a rate: bad number %q", s, strings.TrimSpace(num))
	}
	if n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return 0, fmt.Errorf("rate %q must be greater than zero", s)
	}
	switch strings.ToLower(strings.TrimSpace(unit)) {
	case "s", "sec":
		return n, nil
	case "m", "min":
		return n / 60, nil
	}
	return 0, fmt.Errorf("unknown rate unit %q in %q; use /s (per second) or /m (per minute)", unit, s)
}

// MatchGlob reports whether s matches pattern, where '*' matches any run of
// characters (including none) and '?' exactly one character. Everything else
// matches itself.
func MatchGlob(pattern, s string) bool {
	p, t := []rune(pattern), []rune(s)
	pi, ti := 0, 0
	star, mark := -1, 0
	for ti < len(t) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == t[ti]) && p[pi] != '*':
			pi++
			ti++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ti
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			ti = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
