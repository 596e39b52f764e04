package sdk_test

import (
	"strings"
	"testing"

	"github.com/socketfleet/socketfleet/sdk"
)

func TestLooksLikeSocketID(t *testing.T) {
	for _, c := range []struct {
		room string
		want bool
	}{
		{"", false},
		{"kQyWOAjK6YfnPK3ZAAAB", true}, // a real id: 20 base64url characters
		{strings.Repeat("a", 19), false},
		{strings.Repeat("a", 21), false},
		// Any 20 characters count, not only base64url ones.
		{"chat:lobby/room #1!!", true},
		// Counted in UTF-16 code units, not bytes or runes: é is 2 bytes
		// and 1 unit, € 3 bytes and 1 unit, 😀 4 bytes and 2 units.
		{strings.Repeat("é", 20), true},
		{strings.Repeat("€", 20), true},
		{strings.Repeat("€", 21), false},
		{strings.Repeat("😀", 10), true},
		{strings.Repeat("😀", 20), false},
		{strings.Repeat("a", 18) + "😀", true},
		{strings.Repeat("a", 19) + "😀", false},
		{strings.Repeat("a", 10) + strings.Repeat("é", 5), false}, // 20 bytes, 15 units
		{strings.Repeat("\xff", 20), true},                        // invalid bytes: one unit each
	} {
		if got := sdk.LooksLikeSocketID(c.room); got != c.want {
			t.Errorf("LooksLikeSocketID(%q) = %v, want %v", c.room, got, c.want)
		}
	}
}
