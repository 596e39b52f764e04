package config

import (
	"errors"
	"strings"
	"testing"
)

func TestJSONDepth(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	cases := []struct {
		json string
		max  int
		over bool
	}{
		{`1`, 0, false},
		{`[]`, 1, false},
		{`[]`, 0, true},
		{`{"a":[{"b":1}]}`, 3, false},
		{`{"a":[{"b":1}]}`, 2, true},
		{`"[[[[[[[["`, 1, false},        // brackets inside a string
		{`["\"[[[[", 1]`, 1, false},     // an escaped quote does not end the string
		{`["\\", [[1]]]`, 2, true},      // an escaped backslash does
		{`[[1],[2],[3],[4]]`, 2, false}, // siblings do not add up
		{deep(MaxJSONDepth), MaxJSONDepth, false},
		{deep(MaxJSONDepth + 1), MaxJSONDepth, true},
	}
	for _, tc := range cases {
		if got := jsonDepthExceeds([]byte(tc.json), tc.max); got != tc.over {
			t.Errorf("jsonDepthExceeds(%.40s, %d) = %v, want %v", tc.json, tc.max, got, tc.over)
		}
	}
	if _, err := ValueFromJSON([]byte(deep(MaxJSONDepth + 1))); !errors.Is(err, ErrTooDeep) {
		t.Errorf("ValueFromJSON over the limit: %v, want ErrTooDeep", err)
	}
	if _, err := ValueFromJSON([]byte(deep(MaxJSONDepth))); err != nil {
		t.Errorf("ValueFromJSON at the limit: %v", err)
	}
}

// BenchmarkValueFromJSONAtTheLimit: the most nesting a rule converts.
func BenchmarkValueFromJSONAtTheLimit(b *testing.B) {
	data := []byte(`{"room":` + strings.Repeat("[", MaxJSONDepth-1) + strings.Repeat("]", MaxJSONDepth-1) + `}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ValueFromJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}
