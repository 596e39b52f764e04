package siowire

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var decoderSeeds = []struct{ text, bins string }{
	{`0`, ""},
	{`0/admin,{"token":"1"}`, ""},
	{`0/custom`, ""},
	{`1/admin,`, ""},
	{`2["foo"]`, ""},
	{`2/admin,13["x"]`, ""},
	{`2["chat:message",{"room":"lobby","text":"hello world","from":"alice"}]`, ""},
	{`3/admin,13["bar"]`, ""},
	{`4{"message":"not authorized","data":{"reason":"bad token"}}`, ""},
	{`51-["baz",{"_placeholder":true,"num":0}]`, "\x01\x02\x03"},
	{`52-/admin,7["up",{"_placeholder":true,"num":1},{"a":{"_placeholder":true,"num":0}}]`, "A|BB"},
	{`61-15[{"_placeholder":true,"num":0}]`, "x"},
	{`50-["nobin"]`, ""},
	{`51-["p",{"num":0,"\u005fplaceholder":true}]`, "x"},
	{`51-["baz",{"_placeholder":true,"num":1}]`, "x"},
	{`2["\u0063onnect"]`, ""},
	{`42abc["x"]`, ""},
	{`2{}`, ""},
	{`218446744073709551616["x"]`, ""},
}

// placeholdersOK is an independent oracle for the placeholder rule, built on
// encoding/json: every object whose "_placeholder" is true needs a "num" that
// is a plain integer below n.
func placeholdersOK(data []byte, n int) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return false
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				if !walk(e) {
					return false
				}
			}
		case map[string]any:
			if v["_placeholder"] == true {
				num, ok := v["num"].(json.Number)
				if !ok || strings.ContainsAny(string(num), "-.eE") || len(num) > 9 {
					return false
				}
				if k, err := num.Int64(); err != nil || k >= int64(n) {
					return false
				}
			}
			for _, e := range v {
				if !walk(e) {
					return false
				}
			}
		}
		return true
	}
	return walk(v)
}

// FuzzDecoder feeds a text message and then the '|'-separated binary parts.
// Properties: no panic; accepted packets are well formed, re-encode to a
// message that decodes to an equal packet; the placeholder and event name
// rules agree with an encoding/json based oracle.
func FuzzDecoder(f *testing.F) {
	for _, s := range decoderSeeds {
		f.Add([]byte(s.text), []byte(s.bins))
	}
	f.Fuzz(func(t *testing.T, text, bins []byte) {
		var parts [][]byte
		if len(bins) > 0 {
			parts = bytes.Split(bins, []byte("|"))
		}
		d := NewDecoder(4)
		p, err := d.AddText(text)
		if err != nil {
			if d.Pending() {
				t.Fatal("pending after error")
			}
			return
		}
		for _, b := range parts {
			if p != nil {
				break
			}
			if p, err = d.AddBinary(b); err != nil {
				t.Fatalf("AddBinary: %v", err)
			}
		}
		if p == nil {
			if !d.Pending() {
				t.Fatal("incomplete packet but not pending")
			}
			return
		}
		if d.Pending() {
			t.Fatal("complete packet but still pending")
		}
		if _, err := d.AddBinary([]byte("x")); err == nil {
			t.Fatal("extra binary accepted")
		}
		if !p.Type.Valid() || p.Namespace == "" || p.Namespace[0] != '/' || strings.Contains(p.Namespace, ",") {
			t.Fatalf("malformed packet %+v", p)
		}
		if !p.Type.IsBinary() && p.Attachments != nil {
			t.Fatalf("attachments on %v", p.Type)
		}
		if p.Data != nil {
			if !json.Valid(p.Data) {
				t.Fatalf("accepted invalid JSON %q", p.Data)
			}
			if p.Type.IsBinary() && !placeholdersOK(p.Data, len(p.Attachments)) {
				t.Fatalf("accepted bad placeholders %q with %d attachments", p.Data, len(p.Attachments))
			}
		}
		switch p.Type {
		case Event, BinaryEvent:
			var arr []any
			if err := json.Unmarshal(p.Data, &arr); err != nil || len(arr) == 0 {
				t.Fatalf("bad event payload %q", p.Data)
			}
			switch name := arr[0].(type) {
			case float64:
			case string:
				if isReserved([]byte(name)) {
					t.Fatalf("reserved event %q accepted", name)
				}
			default:
				t.Fatalf("bad event name in %q", p.Data)
			}
			name, args, err := EventName(p)
			if err != nil {
				t.Fatalf("EventName(%q): %v", p.Data, err)
			}
			if s, ok := arr[0].(string); ok && s != name && !strings.ContainsRune(s, '\uFFFD') {
				t.Fatalf("EventName = %q, want %q", name, s)
			}
			if len(args) != len(arr)-1 {
				t.Fatalf("EventName args %d, want %d", len(args), len(arr)-1)
			}
		case Ack, BinaryAck:
			if !p.HasID || p.Data == nil || !bytes.HasPrefix(bytes.TrimLeft(p.Data, " \t\r\n"), []byte("[")) {
				t.Fatalf("bad ack %+v", p)
			}
		case Disconnect:
			if p.Data != nil {
				t.Fatalf("disconnect with data %q", p.Data)
			}
		}
		// round trip
		enc := p.AppendEncoded(nil)
		d2 := NewDecoder(4)
		q, err := d2.AddText(enc)
		if err != nil {
			t.Fatalf("re-encoded %q (from %q) does not decode: %v", enc, text, err)
		}
		for _, a := range p.Attachments {
			if q != nil {
				t.Fatalf("re-decoded packet complete too early")
			}
			if q, err = d2.AddBinary(a); err != nil {
				t.Fatal(err)
			}
		}
		if q == nil || !packetsEqual(p, q) {
			t.Fatalf("round trip %q -> %+v -> %q -> %+v", text, p, enc, q)
		}
	})
}

// FuzzPlaceholders compares the scanner's placeholder check with the
// encoding/json based oracle, in both directions.
func FuzzPlaceholders(f *testing.F) {
	f.Add([]byte(`["x",{"_placeholder":true,"num":0}]`), uint8(1))
	f.Add([]byte(`["x",{"_placeholder":true,"num":1}]`), uint8(1))
	f.Add([]byte(`["x",{"num":0,"\u005fplaceholder":true,"_placeholder":false}]`), uint8(0))
	f.Add([]byte(`[{"a":[{"_placeholder":true,"num":3}]}]`), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		n %= 11
		s := scanner{data: data, checkPH: true, nAtt: int(n)}
		_, err := s.top()
		if !json.Valid(data) {
			if err == nil {
				t.Fatalf("accepted invalid JSON %q", data)
			}
			return
		}
		if got, want := err == nil, placeholdersOK(data, int(n)); got != want {
			t.Fatalf("placeholders in %q with %d attachments: scanner %v (%v), oracle %v", data, n, got, err, want)
		}
	})
}

// FuzzSplitArray: SplitArray accepts exactly the valid JSON arrays (checked
// against encoding/json), every element is valid JSON equal to what
// encoding/json sees, and AppendArray of the elements is an equal array.
// Valid must agree with json.Valid on every input.
func FuzzSplitArray(f *testing.F) {
	for _, c := range jsonCases[:len(jsonCases)-3] {
		f.Add([]byte(c))
	}
	f.Add([]byte(`["chat:message",{"room":"lobby","text":"hello world","from":"alice"}]`))
	f.Add([]byte(" [ 1 ,\n\t\"a,b]\" , [2,[3]] , {\"x\":[\",\"]} , null,true ,false, -1.5e3 ] "))
	f.Fuzz(func(t *testing.T, raw []byte) {
		valid := json.Valid(raw)
		if Valid(raw) != valid {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", raw, !valid, valid)
		}
		elems, err := SplitArray(raw)
		isArray := valid && bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte("["))
		if (err == nil) != isArray {
			t.Fatalf("SplitArray(%q) error %v, but valid=%v isArray=%v", raw, err, valid, isArray)
		}
		if err != nil {
			return
		}
		var want []json.RawMessage
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("encoding/json cannot split %q: %v", raw, err)
		}
		if len(elems) != len(want) {
			t.Fatalf("SplitArray(%q): %d elements, encoding/json %d", raw, len(elems), len(want))
		}
		for i, e := range elems {
			if !json.Valid(e) || !bytes.Equal(e, want[i]) {
				t.Fatalf("SplitArray(%q)[%d] = %q, want %q", raw, i, e, want[i])
			}
		}
		joined := AppendArray(nil, elems...)
		again, err := SplitArray(joined)
		if err != nil || !json.Valid(joined) || len(again) != len(elems) {
			t.Fatalf("AppendArray(%q) = %q: %v", elems, joined, err)
		}
		for i := range again {
			if !bytes.Equal(again[i], elems[i]) {
				t.Fatalf("re-split element %d = %q, want %q", i, again[i], elems[i])
			}
		}
	})
}

// FuzzAppendString: the output is a valid JSON string that decodes to s
// (invalid UTF-8 bytes each decoding to U+FFFD).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "hello", `a"b\c`, "<&>", "\x00\x1f\x7f", "\u2028", "café 🎉", "bad\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("AppendString(%q) = %q: %v", s, enc, err)
		}
		// string([]rune(s)) replaces each invalid byte by U+FFFD, as AppendString does
		if want := string([]rune(s)); back != want {
			t.Fatalf("AppendString(%q) = %q decodes to %q, want %q", s, enc, back, want)
		}
	})
}
