package socketio

import "testing"

// Only the named top-level fields go; the rest keep their order and bytes.
func TestDropFields(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"token":"t","room":"lobby","n":1.50}`, `{"room":"lobby","n":1.50}`},
		{`{"a": {"token":"nested stays"}, "token":"x", "password":"p"}`, `{"a":{"token":"nested stays"}}`},
		{`{"token":"only"}`, `{}`},
		{`{"room":"lobby"}`, `{"room":"lobby"}`},
		{`{}`, `{}`},
		{`"not an object"`, `"not an object"`},
		{`{"token":"x",`, `{}`}, // broken: keep nothing rather than a secret
	} {
		if got := string(dropFields([]byte(tc.in), []string{"token", "password"})); got != tc.want {
			t.Errorf("dropFields(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
