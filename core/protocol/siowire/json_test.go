package siowire

import (
	"encoding/json"
	"strings"
	"testing"
)

var jsonCases = []string{
	`null`, `true`, `false`, `0`, `-0`, `1`, `-1`, `12345678901234567890`, `1.5`, `-1.5e10`, `1E+2`, `1e-2`,
	`""`, `"x"`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\uD83C\uDF89"`, `"café"`, "\"\xff\"",
	`[]`, `[ ]`, `{}`, `{ }`, `[1,2,3]`, `{"a":1,"b":[true,false,null]}`, ` [ 1 , { "a" : "b" } ] `,
	"\t\n\r [1]\r\n", `[[[[[]]]]]`, `{"_placeholder":true,"num":0}`,
	// invalid
	``, ` `, `[`, `]`, `{`, `}`, `[1,]`, `[,1]`, `[1 2]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{1:2}`, `{'a':1}`,
	`01`, `-`, `-a`, `1.`, `.1`, `1e`, `1e+`, `+1`, `0x1`, `NaN`, `Infinity`, `tru`, `nul`, `falsey`, `truex`,
	`"abc`, `"\x"`, `"\u12"`, `"\u12G4"`, "\"a\x01\"", "\"a\x1f\"", `"\`, `[1]]`, `[1] x`, `1 2`, `"a" "b"`,
	"[\"a\"]\x00", "\x00[]", "\v[]", "\u00a0[]",
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
}

func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, c := range jsonCases {
		if got, want := Valid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("Valid(%.40q) = %v, encoding/json says %v", c, got, want)
		}
	}
}

func TestSplitArray(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{in: `[]`, want: nil},
		{in: ` [ ] `, want: nil},
		{in: `["foo"]`, want: []string{`"foo"`}},
		{in: `["chat:message",{"room":"lobby","text":"hello world","from":"alice"}]`,
			want: []string{`"chat:message"`, `{"room":"lobby","text":"hello world","from":"alice"}`}},
		{in: " [ 1 ,\n\t\"a,b]\" , [2,[3]] , {\"x\":[\",\"]} , null,true ,false, -1.5e3 ] ",
			want: []string{`1`, `"a,b]"`, `[2,[3]]`, `{"x":[","]}`, `null`, `true`, `false`, `-1.5e3`}},
		{in: `[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]`,
			want: strings.Split("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20", ",")},
		{in: `{}`, err: true},
		{in: `"x"`, err: true},
		{in: `1`, err: true},
		{in: ``, err: true},
		{in: `[1,]`, err: true},
		{in: `[1`, err: true},
		{in: `[1]x`, err: true},
		{in: `[1][2]`, err: true},
	}
	for _, tt := range tests {
		got, err := SplitArray([]byte(tt.in))
		if tt.err {
			if err == nil {
				t.Errorf("SplitArray(%q) = %q, want error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("SplitArray(%q): %v", tt.in, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("SplitArray(%q) = %q, want %q", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if string(got[i]) != tt.want[i] {
				t.Errorf("SplitArray(%q)[%d] = %q, want %q", tt.in, i, got[i], tt.want[i])
			}
		}
		if tt.want != nil {
			joined := string(AppendArray(nil, got...))
			if want := "[" + strings.Join(tt.want, ",") + "]"; joined != want {
				t.Errorf("AppendArray = %q, want %q", joined, want)
			}
		}
	}
	// elements alias the input but cannot overwrite it through append
	raw := []byte(`["a","b"]`)
	elems, _ := SplitArray(raw)
	_ = append(elems[0], 'X')
	if string(raw) != `["a","b"]` {
		t.Errorf("append to element overwrote input: %q", raw)
	}
	raw[2] = 'z'
	if string(elems[0]) != `"z"` {
		t.Errorf("element does not alias input: %q", elems[0])
	}
}

func TestAppendArray(t *testing.T) {
	if got := string(AppendArray(nil)); got != "[]" {
		t.Errorf("AppendArray() = %q", got)
	}
	if got := string(AppendArray([]byte("42"), []byte(`"ev"`), []byte(`{"a":1}`), []byte(`2`))); got != `42["ev",{"a":1},2]` {
		t.Errorf("AppendArray = %q", got)
	}
}

func TestAppendString(t *testing.T) {
	// Expected values produced by Node's JSON.stringify.
	tests := []struct{ in, want string }{
		{"", `""`},
		{"hello", `"hello"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"<script>&</script>", `"<script>&</script>"`},
		{"\x00\x01\b\t\n\v\f\r\x1f\x7f", "\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f\x7f\""},
		{"\u2028\u2029", "\"\u2028\u2029\""},
		{"café 日本 🎉", `"café 日本 🎉"`},
		{"/slash/", `"/slash/"`},
		{"bad\xffutf8\xc3", `"bad\ufffdutf8\ufffd"`},
	}
	for _, tt := range tests {
		got := AppendString([]byte("x"), tt.in)
		if string(got) != "x"+tt.want {
			t.Errorf("AppendString(%q) = %q, want %q", tt.in, got[1:], tt.want)
		}
		var back string
		if err := json.Unmarshal(got[1:], &back); err != nil || (back != tt.in && !strings.Contains(tt.in, "\xff")) {
			t.Errorf("AppendString(%q) does not round-trip: %q %v", tt.in, back, err)
		}
	}
	if a := testing.AllocsPerRun(100, func() {
		var buf [64]byte
		_ = AppendString(buf[:0], "chat:message")
	}); a != 0 {
		t.Errorf("AppendString allocates %v", a)
	}
}

func TestAppendPlaceholder(t *testing.T) {
	got := AppendPlaceholder([]byte("["), 3)
	if string(got) != `[{"_placeholder":true,"num":3}` {
		t.Errorf("AppendPlaceholder = %q", got)
	}
}

func TestValidZeroAlloc(t *testing.T) {
	data := []byte(`["chat:message",{"room":"lobby","text":"hello world","from":"alice","n":[1,2.5,-3e2,true,null]}]`)
	if a := testing.AllocsPerRun(100, func() {
		if !Valid(data) {
			t.Fatal("invalid")
		}
	}); a != 0 {
		t.Errorf("Valid allocates %v", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		if _, err := SplitArray(data); err != nil {
			t.Fatal(err)
		}
	}); a != 1 {
		t.Errorf("SplitArray allocates %v, want 1", a)
	}
}
