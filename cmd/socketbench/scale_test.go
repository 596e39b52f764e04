package main

import (
	"slices"
	"testing"
)

func TestScaleSizing(t *testing.T) {
	w, in := scaleSizing(20000, 0)
	if w != 20000-scaleWorkerReserve || in != 20000-scaleServerReserve {
		t.Fatalf("scaleSizing(20000, 0) = %d, %d", w, in)
	}
	if w, _ := scaleSizing(20000, 5000); w != 5000 {
		t.Fatalf("-per-worker 5000: %d per worker", w)
	}
	if w, _ := scaleSizing(20000, 50000); w != 20000-scaleWorkerReserve {
		t.Fatalf("-per-worker above the limit: %d per worker", w)
	}
	if w, in := scaleSizing(64, 0); w != 1 || in != 1 {
		t.Fatalf("a tiny limit: %d, %d (want at least 1 each)", w, in)
	}
}

func TestSplitWorkers(t *testing.T) {
	for _, c := range []struct {
		total, per int
		want       []int
	}{
		{19500, 19900, []int{19500}},
		{55000, 18334, []int{18334, 18333, 18333}},
		{10, 3, []int{3, 3, 2, 2}},
		{0, 10, nil},
	} {
		got := splitWorkers(c.total, c.per)
		if !slices.Equal(got, c.want) {
			t.Errorf("splitWorkers(%d, %d) = %v, want %v", c.total, c.per, got, c.want)
		}
		s := 0
		for _, n := range got {
			if n > c.per {
				t.Errorf("splitWorkers(%d, %d): a worker with %d", c.total, c.per, n)
			}
			s += n
		}
		if s != c.total {
			t.Errorf("splitWorkers(%d, %d) holds %d", c.total, c.per, s)
		}
	}
}

func TestParseSizes(t *testing.T) {
	got, err := parseSizes("10000, max,2000", 19500)
	if err != nil || !slices.Equal(got, []int{2000, 10000, 19500}) {
		t.Fatalf("parseSizes = %v, %v", got, err)
	}
	for _, bad := range []string{"20000", "x", "0", ""} {
		if _, err := parseSizes(bad, 19500); err == nil {
			t.Errorf("parseSizes(%q) took it", bad)
		}
	}
}

func TestSourceAddr(t *testing.T) {
	if a, b := sourceAddr(0, 0), sourceAddr(0, 1); a != "127.0.0.2" || b != "127.0.0.3" {
		t.Fatalf("sourceAddr: %s, %s", a, b)
	}
	if a := sourceAddr(7, 300); a != "127.7.1.46" {
		t.Fatalf("sourceAddr(7, 300) = %s", a)
	}
}
