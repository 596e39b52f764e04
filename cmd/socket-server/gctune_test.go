package main

import "testing"

// TestGCAtRest: the collector's tight target is for intervals that
// allocated under a tenth of the live heap, the default for the rest.
func TestGCAtRest(t *testing.T) {
	for _, c := range []struct {
		allocated, live uint64
		rest            bool
	}{
		{0, 0, false}, // nothing live yet: nothing to save
		{1 << 20, 100 << 20, true},
		{9 << 20, 100 << 20, true},
		{10 << 20, 100 << 20, false},
		{500 << 20, 100 << 20, false},
	} {
		if got := gcAtRest(c.allocated, c.live); got != c.rest {
			t.Errorf("gcAtRest(%d, %d) = %v, want %v", c.allocated, c.live, got, c.rest)
		}
	}
}
