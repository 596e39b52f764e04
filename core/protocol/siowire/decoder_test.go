package siowire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func pkt(t PacketType, nsp string, data string) *Packet {
	p := &Packet{Type: t, Namespace: nsp}
	if data != "" {
		p.Data = []byte(data)
	}
	return p
}

func withID(p *Packet, id uint64) *Packet {
	p.ID, p.HasID = id, true
	return p
}

func withAtt(p *Packet, att ...string) *Packet {
	p.Attachments = make([][]byte, len(att))
	for i, a := range att {
		p.Attachments[i] = []byte(a)
	}
	return p
}

func packetsEqual(a, b *Packet) bool {
	if a.Type != b.Type || a.Namespace != b.Namespace || a.HasID != b.HasID || a.ID != b.ID ||
		!bytes.Equal(a.Data, b.Data) || (a.Data == nil) != (b.Data == nil) || len(a.Attachments) != len(b.Attachments) {
		return false
	}
	for i := range a.Attachments {
		if !bytes.Equal(a.Attachments[i], b.Attachments[i]) {
			return false
		}
	}
	return true
}

// decodeAll feeds a text message then its binary attachments.
func decodeAll(d *Decoder, text string, bins ...string) (*Packet, error) {
	p, err := d.AddText([]byte(text))
	if err != nil {
		return nil, err
	}
	for i, b := range bins {
		if p != nil {
			return nil, errors.New("packet complete before all attachments")
		}
		p, err = d.AddBinary([]byte(b))
		if err != nil {
			return nil, err
		}
		if p == nil && i == len(bins)-1 {
			return nil, errors.New("packet incomplete after all attachments")
		}
	}
	if p == nil {
		return nil, errors.New("packet incomplete")
	}
	return p, nil
}

func TestDecoderValid(t *testing.T) {
	tests := []struct {
		text string
		bins []string
		want *Packet
	}{
		{text: `0`, want: pkt(Connect, "/", "")},
		{text: `0{}`, want: pkt(Connect, "/", "{}")},
		{text: `0/admin,{"token":"1"}`, want: pkt(Connect, "/admin", `{"token":"1"}`)},
		{text: `0{"token":"123"}`, want: pkt(Connect, "/", `{"token":"123"}`)},
		{text: `0/custom`, want: pkt(Connect, "/custom", "")},
		{text: `0/custom,`, want: pkt(Connect, "/custom", "")},
		{text: `0/random`, want: pkt(Connect, "/random", "")},
		{text: `0/,{}`, want: pkt(Connect, "/", "{}")},
		{text: `0/a/b?x=1,{"k":[1,2,{"z":null}]}`, want: pkt(Connect, "/a/b?x=1", `{"k":[1,2,{"z":null}]}`)},
		{text: `0 {} `, want: pkt(Connect, "/", " {} ")},
		{text: `1`, want: pkt(Disconnect, "/", "")},
		{text: `01`, want: withID(pkt(Connect, "/", ""), 1)},                // Node accepts an id here too
		{text: `1/admin,1`, want: withID(pkt(Disconnect, "/admin", ""), 1)}, // idem
		{text: `1/custom`, want: pkt(Disconnect, "/custom", "")},
		{text: `1/admin,`, want: pkt(Disconnect, "/admin", "")},
		{text: `2["foo"]`, want: pkt(Event, "/", `["foo"]`)},
		{text: `2["chat:message",{"room":"lobby","text":"hello world","from":"alice"}]`,
			want: pkt(Event, "/", `["chat:message",{"room":"lobby","text":"hello world","from":"alice"}]`)},
		{text: `2/admin,13["x"]`, want: withID(pkt(Event, "/admin", `["x"]`), 13)},
		{text: `212["ev","hi"]`, want: withID(pkt(Event, "/", `["ev","hi"]`), 12)},
		{text: `2[42,"x"]`, want: pkt(Event, "/", `[42,"x"]`)},
		{text: `2[-1.5e3]`, want: pkt(Event, "/", `[-1.5e3]`)},
		{text: `2["connection"]`, want: pkt(Event, "/", `["connection"]`)},
		{text: `2["Connect"]`, want: pkt(Event, "/", `["Connect"]`)},
		{text: `2["a\"b",{"_placeholder":true,"num":5}]`, want: pkt(Event, "/", `["a\"b",{"_placeholder":true,"num":5}]`)}, // not binary: no check
		{text: `2 [ "spaced" , 1 ] `, want: pkt(Event, "/", ` [ "spaced" , 1 ] `)},
		{text: `218446744073709551615["x"]`, want: withID(pkt(Event, "/", `["x"]`), 18446744073709551615)},
		{text: `3/admin,13["bar"]`, want: withID(pkt(Ack, "/admin", `["bar"]`), 13)},
		{text: `312["hi"]`, want: withID(pkt(Ack, "/", `["hi"]`), 12)},
		{text: `30[]`, want: withID(pkt(Ack, "/", `[]`), 0)},
		{text: `4{"message":"not authorized","data":{"reason":"bad token"}}`,
			want: pkt(ConnectError, "/", `{"message":"not authorized","data":{"reason":"bad token"}}`)},
		{text: `4/random,{"message":"Invalid namespace"}`, want: pkt(ConnectError, "/random", `{"message":"Invalid namespace"}`)},
		{text: `4"old style"`, want: pkt(ConnectError, "/", `"old style"`)},
		{text: `51-["baz",{"_placeholder":true,"num":0}]`, bins: []string{"\x01\x02\x03"},
			want: withAtt(pkt(BinaryEvent, "/", `["baz",{"_placeholder":true,"num":0}]`), "\x01\x02\x03")},
		{text: `52-/admin,7["up",{"_placeholder":true,"num":1},{"a":{"_placeholder":true,"num":0}}]`, bins: []string{"A", "BB"},
			want: withID(withAtt(pkt(BinaryEvent, "/admin", `["up",{"_placeholder":true,"num":1},{"a":{"_placeholder":true,"num":0}}]`), "A", "BB"), 7)},
		{text: `50-["nobin"]`, want: pkt(BinaryEvent, "/", `["nobin"]`)},
		{text: `53-["three",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]`, bins: []string{"a", "", "c"},
			want: withAtt(pkt(BinaryEvent, "/", `["three",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]`), "a", "", "c")},
		{text: `510-["ten"]`, bins: strings.Split("0123456789", ""),
			want: withAtt(pkt(BinaryEvent, "/", `["ten"]`), strings.Split("0123456789", "")...)},
		{text: `51-["p",{"_placeholder":false,"num":9}]`, bins: []string{"x"},
			want: withAtt(pkt(BinaryEvent, "/", `["p",{"_placeholder":false,"num":9}]`), "x")},
		{text: `51-["p",{"num":0,"\u005fplaceholder":true}]`, bins: []string{"x"},
			want: withAtt(pkt(BinaryEvent, "/", `["p",{"num":0,"\u005fplaceholder":true}]`), "x")},
		{text: `51-["p","{\"_placeholder\":true,\"num\":7}"]`, bins: []string{"x"},
			want: withAtt(pkt(BinaryEvent, "/", `["p","{\"_placeholder\":true,\"num\":7}"]`), "x")},
		{text: `61-15[{"_placeholder":true,"num":0}]`, bins: []string{"\x00"},
			want: withID(withAtt(pkt(BinaryAck, "/", `[{"_placeholder":true,"num":0}]`), "\x00"), 15)},
		{text: `61-7[{"_placeholder":true,"num":0}]`, bins: []string{"\x01\x02\x03"},
			want: withID(withAtt(pkt(BinaryAck, "/", `[{"_placeholder":true,"num":0}]`), "\x01\x02\x03"), 7)},
		{text: `61-/admin,15[{"_placeholder":true,"num":0}]`, bins: []string{"\x01"},
			want: withID(withAtt(pkt(BinaryAck, "/admin", `[{"_placeholder":true,"num":0}]`), "\x01"), 15)},
		{text: `601-3[{"_placeholder":true,"num":0}]`, bins: []string{"z"}, // leading zero in count, as Node
			want: withID(withAtt(pkt(BinaryAck, "/", `[{"_placeholder":true,"num":0}]`), "z"), 3)},
	}
	d := NewDecoder(10)
	for _, tt := range tests {
		got, err := decodeAll(d, tt.text, tt.bins...)
		if err != nil {
			t.Errorf("decode %q: %v", tt.text, err)
			d.Reset()
			continue
		}
		if !packetsEqual(got, tt.want) {
			t.Errorf("decode %q = %+v, want %+v", tt.text, got, tt.want)
		}
		if d.Pending() {
			t.Errorf("decode %q: decoder still pending", tt.text)
		}
		// round trip
		enc := got.AppendEncoded(nil)
		again, err := decodeAll(NewDecoder(10), string(enc), tt.bins...)
		if err != nil || !packetsEqual(again, got) {
			t.Errorf("round trip %q -> %q -> %+v, %v", tt.text, enc, again, err)
		}
	}
}

func TestDecoderInvalid(t *testing.T) {
	tests := []struct {
		text string
		why  string
	}{
		{"", "empty"},
		{"7", "unknown type"},
		{"9[]", "unknown type"},
		{"a", "unknown type"},
		{"/0", "unknown type"},
		// attachments count
		{`5["x"]`, "missing count"},
		{`5-["x"]`, "empty count"},
		{`51["x"]`, "missing '-'"},
		{`51`, "missing '-'"},
		{`5`, "missing count"},
		{`5a-["x"]`, "non-digit count"},
		{`51a-["x"]`, "non-digit count"},
		{`511-["x"]`, "more than max"},
		{`599999999999999999999999-["x"]`, "huge count"},
		{`21-["x"]`, "count on a non-binary type"},
		{`2-["x"]`, "count on a non-binary type"},
		{`01-{}`, "count on a non-binary type"},
		{`31-1[]`, "count on a non-binary type"},
		// namespace
		{`0admin,{}`, "namespace without '/'"},
		{`2admin,["x"]`, "namespace without '/'"},
		{`0,{}`, "stray comma"},
		// ack id
		{`218446744073709551616["x"]`, "ack id overflow"},
		{`299999999999999999999999["x"]`, "ack id overflow"},
		// CONNECT
		{`0[]`, "connect array"},
		{`0"x"`, "connect string"},
		{`0null`, "connect null"},
		{`0{`, "connect bad json"},
		{`0{"a":}`, "connect bad json"},
		{`0{} x`, "trailing data"},
		// DISCONNECT
		{`1{}`, "disconnect with data"},
		{`1/admin,{}`, "disconnect with data"},
		// EVENT
		{`2`, "event without data"},
		{`2/admin,`, "event without data"},
		{`213`, "event without data"},
		{`2[]`, "empty array"},
		{`2{}`, "object"},
		{`2"x"`, "string"},
		{`2abc["x"]`, "garbage before json"},
		{`2["x"`, "unterminated"},
		{`2["x"]]`, "trailing"},
		{`2["x",]`, "trailing comma"},
		{`2[null]`, "null name"},
		{`2[true]`, "bool name"},
		{`2[{}]`, "object name"},
		{`2[["x"]]`, "array name"},
		{`2["connect"]`, "reserved"},
		{`2["connect_error"]`, "reserved"},
		{`2["disconnect",1]`, "reserved"},
		{`2["disconnecting"]`, "reserved"},
		{`2["newListener"]`, "reserved"},
		{`2["removeListener"]`, "reserved"},
		{`2["\u0063onnect"]`, "reserved, escaped"},
		{`2/admin,1["disconnect"]`, "reserved"},
		{`2["a\x"]`, "bad escape"},
		{"2[\"a\x01\"]", "control char"},
		{`2[01]`, "leading zero"},
		{`2[1.]`, "bad number"},
		{`2[.5]`, "bad number"},
		{`2[-]`, "bad number"},
		{`2[1e]`, "bad number"},
		{`2["x",tru]`, "bad literal"},
		{`2['x']`, "single quotes"},
		// ACK
		{`3["x"]`, "ack without id"},
		{`3[]`, "ack without id"},
		{`31`, "ack without data"},
		{`31{}`, "ack object"},
		{`31"x"`, "ack string"},
		{`3/admin,1`, "ack without data"},
		// CONNECT_ERROR
		{`4`, "connect_error without data"},
		{`4abc`, "bad json"},
		{`4[]`, "array"},
		{`41`, "number"},
		{`4null`, "null"},
		// BINARY_EVENT / BINARY_ACK
		{`51-["baz",{"_placeholder":true,"num":1}]`, "placeholder out of range"},
		{`51-["baz",{"_placeholder":true,"num":-1}]`, "negative placeholder"},
		{`51-["baz",{"_placeholder":true,"num":0.5}]`, "fractional placeholder"},
		{`51-["baz",{"_placeholder":true,"num":"0"}]`, "string placeholder"},
		{`51-["baz",{"_placeholder":true}]`, "placeholder without num"},
		{`50-["baz",{"_placeholder":true,"num":0}]`, "placeholder with no attachments"},
		{`52-["baz",[{"x":{"_placeholder":true,"num":2}}]]`, "nested placeholder out of range"},
		{`51-["baz",{"\u005fplaceholder":true,"num":3}]`, "escaped key"},
		{`51-["baz",{"_placeholder":true,"n\u0075m":3}]`, "escaped key"},
		{`51-["baz",{"_placeholder":false,"num":3,"_placeholder":true}]`, "duplicate key, last wins"},
		{`51-`, "binary event without data"},
		{`51-[]`, "empty array"},
		{`51-["connect"]`, "reserved"},
		{`61-["x"]`, "binary ack without id"},
		{`61-1{}`, "binary ack object"},
		{`61-1`, "binary ack without data"},
	}
	for _, tt := range tests {
		d := NewDecoder(10)
		p, err := d.AddText([]byte(tt.text))
		if err == nil {
			t.Errorf("AddText(%q) (%s) = %+v, want error", tt.text, tt.why, p)
			continue
		}
		if !errors.Is(err, ErrInvalidPacket) {
			t.Errorf("AddText(%q) error %v does not wrap ErrInvalidPacket", tt.text, err)
		}
		if d.Pending() {
			t.Errorf("AddText(%q): pending after error", tt.text)
		}
	}
}

func TestDecoderSequence(t *testing.T) {
	d := NewDecoder(10)
	// binary message with nothing pending
	if _, err := d.AddBinary([]byte{1}); !errors.Is(err, ErrInvalidPacket) {
		t.Errorf("AddBinary with nothing pending: %v", err)
	}
	// text while pending
	if p, err := d.AddText([]byte(`52-["x",{"_placeholder":true,"num":0}]`)); p != nil || err != nil {
		t.Fatalf("AddText = %v, %v", p, err)
	}
	if p, err := d.AddBinary([]byte{1}); p != nil || err != nil {
		t.Fatalf("AddBinary 1 = %v, %v", p, err)
	}
	if _, err := d.AddText([]byte(`2["x"]`)); !errors.Is(err, ErrInvalidPacket) {
		t.Errorf("text while pending: %v", err)
	}
	if d.Pending() {
		t.Error("still pending after error")
	}
	// decoder usable again
	p, err := d.AddText([]byte(`2["x"]`))
	if err != nil || p == nil || string(p.Data) != `["x"]` {
		t.Errorf("after error: %+v, %v", p, err)
	}
	// Reset drops a partial packet
	if p, err := d.AddText([]byte(`51-["x"]`)); p != nil || err != nil {
		t.Fatalf("AddText = %v, %v", p, err)
	}
	d.Reset()
	if _, err := d.AddBinary([]byte{1}); err == nil {
		t.Error("AddBinary after Reset accepted")
	}
	// many attachments (beyond the inline array)
	d = NewDecoder(5)
	if p, err := d.AddText([]byte(`55-["x"]`)); p != nil || err != nil {
		t.Fatalf("AddText = %v, %v", p, err)
	}
	for i := 0; i < 5; i++ {
		p, err := d.AddBinary([]byte{byte(i)})
		if err != nil || (p != nil) != (i == 4) {
			t.Fatalf("AddBinary %d = %v, %v", i, p, err)
		}
		if p != nil {
			if len(p.Attachments) != 5 || p.Attachments[3][0] != 3 {
				t.Errorf("attachments %v", p.Attachments)
			}
		}
	}
	if _, err := d.AddText([]byte(`56-["x"]`)); err == nil {
		t.Error("6 attachments accepted with max 5")
	}
}

func TestNewDecoderLimits(t *testing.T) {
	if _, err := NewDecoder(0).AddText([]byte(`510-["x"]`)); err != nil {
		t.Errorf("default max should allow 10: %v", err)
	}
	if _, err := NewDecoder(0).AddText([]byte(`511-["x"]`)); err == nil {
		t.Error("default max should reject 11")
	}
	if p, err := NewDecoder(-1).AddText([]byte(`50-["x"]`)); err != nil || p == nil {
		t.Errorf("negative max should allow 0: %v %v", p, err)
	}
	if _, err := NewDecoder(-1).AddText([]byte(`51-["x"]`)); err == nil {
		t.Error("negative max should reject 1")
	}
}

func TestDecoderNamespaceCache(t *testing.T) {
	d := NewDecoder(10)
	msg := []byte(`2/chat,["x"]`)
	p, err := d.AddText(msg)
	if err != nil {
		t.Fatal(err)
	}
	msg[3] = 'X' // the namespace must not alias msg
	if p.Namespace != "/chat" {
		t.Errorf("namespace aliases msg: %q", p.Namespace)
	}
	msg2 := []byte(`2/chat,["x"]`)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := d.AddText(msg2); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 1 {
		t.Errorf("AddText with repeated namespace: %v allocs, want 1", allocs)
	}
}

func TestDecodeAllocs(t *testing.T) {
	msg := []byte(`2["chat:message",{"room":"lobby","text":"hello world","from":"alice"}]`)
	bin := []byte(`51-["upload",{"_placeholder":true,"num":0}]`)
	att := []byte{1, 2, 3}
	d := NewDecoder(10)
	if a := testing.AllocsPerRun(100, func() {
		if p, err := d.AddText(msg); err != nil || p == nil {
			t.Fatal(err)
		}
	}); a != 1 {
		t.Errorf("text event: %v allocs, want 1", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		if _, err := d.AddText(bin); err != nil {
			t.Fatal(err)
		}
		if p, err := d.AddBinary(att); err != nil || p == nil {
			t.Fatal(err)
		}
	}); a != 1 {
		t.Errorf("binary event: %v allocs, want 1", a)
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		p    *Packet
		want string
	}{
		{pkt(Connect, "/", ""), `0`},
		{pkt(Connect, "", ""), `0`},
		{pkt(Connect, "/admin", `{"token":"1"}`), `0/admin,{"token":"1"}`},
		{pkt(Connect, "/", `{"sid":"abc"}`), `0{"sid":"abc"}`},
		{pkt(Disconnect, "/custom", ""), `1/custom,`},
		{pkt(Event, "/", `["foo"]`), `2["foo"]`},
		{withID(pkt(Event, "/admin", `["x"]`), 13), `2/admin,13["x"]`},
		{withID(pkt(Ack, "/admin", `["bar"]`), 13), `3/admin,13["bar"]`},
		{withID(pkt(Ack, "/", `["hi"]`), 12), `312["hi"]`},
		{withID(pkt(Ack, "/", `[]`), 0), `30[]`},
		{pkt(ConnectError, "/random", `{"message":"Invalid namespace"}`), `4/random,{"message":"Invalid namespace"}`},
		{withAtt(pkt(BinaryEvent, "/", `["baz",{"_placeholder":true,"num":0}]`), "x"), `51-["baz",{"_placeholder":true,"num":0}]`},
		{withID(withAtt(pkt(BinaryAck, "/", `[{"_placeholder":true,"num":0}]`), "x"), 15), `61-15[{"_placeholder":true,"num":0}]`},
		{pkt(BinaryEvent, "/", `["nobin"]`), `50-["nobin"]`},
		{withID(withAtt(pkt(BinaryEvent, "/a", `[1]`), "x", "y"), 99), `52-/a,99[1]`},
	}
	for _, tt := range tests {
		if got := string(tt.p.AppendEncoded(nil)); got != tt.want {
			t.Errorf("AppendEncoded(%+v) = %q, want %q", tt.p, got, tt.want)
		}
		if got := string(tt.p.AppendEncoded([]byte("4"))); got != "4"+tt.want {
			t.Errorf("AppendEncoded(4, %+v) = %q", tt.p, got)
		}
	}
	if got := string(AppendHeader(nil, Event, "/", 3, 0, false)); got != "2" {
		t.Errorf("AppendHeader ignores attachments for EVENT: %q", got)
	}
	if got := string(AppendHeader(nil, BinaryAck, "/x", 2, 18446744073709551615, true)); got != "62-/x,18446744073709551615" {
		t.Errorf("AppendHeader = %q", got)
	}
	if a := testing.AllocsPerRun(100, func() {
		var buf [128]byte
		_ = tests[6].p.AppendEncoded(buf[:0])
	}); a != 0 {
		t.Errorf("AppendEncoded allocates %v", a)
	}
}

func TestEventName(t *testing.T) {
	tests := []struct {
		data string
		typ  PacketType
		name string
		args []string
		err  bool
	}{
		{data: `["foo"]`, typ: Event, name: "foo"},
		{data: `["chat:message",{"room":"lobby"}, 2 ,"x"]`, typ: Event, name: "chat:message", args: []string{`{"room":"lobby"}`, `2`, `"x"`}},
		{data: `[42,"a"]`, typ: Event, name: "42", args: []string{`"a"`}},
		{data: `[1.50]`, typ: Event, name: "1.50"},
		{data: `["caf\u00e9\n"]`, typ: Event, name: "café\n"},
		{data: `["up",{"_placeholder":true,"num":0}]`, typ: BinaryEvent, name: "up", args: []string{`{"_placeholder":true,"num":0}`}},
		{data: `["connect"]`, typ: Event, err: true},
		{data: `["\u0064isconnect"]`, typ: Event, err: true},
		{data: `[]`, typ: Event, err: true},
		{data: `[null]`, typ: Event, err: true},
		{data: `{}`, typ: Event, err: true},
		{data: `["x"]`, typ: Ack, err: true},
		{data: ``, typ: Event, err: true},
	}
	for _, tt := range tests {
		p := pkt(tt.typ, "/", tt.data)
		name, args, err := EventName(p)
		if tt.err {
			if err == nil {
				t.Errorf("EventName(%s) = %q, want error", tt.data, name)
			}
			continue
		}
		if err != nil {
			t.Errorf("EventName(%s): %v", tt.data, err)
			continue
		}
		if name != tt.name || len(args) != len(tt.args) {
			t.Errorf("EventName(%s) = %q %q, want %q %q", tt.data, name, args, tt.name, tt.args)
			continue
		}
		for i := range args {
			if string(args[i]) != tt.args[i] {
				t.Errorf("EventName(%s) arg %d = %q, want %q", tt.data, i, args[i], tt.args[i])
			}
		}
	}
}

func TestPacketTypeString(t *testing.T) {
	for i, w := range []string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK", "PacketType(7)"} {
		if got := PacketType(i).String(); got != w {
			t.Errorf("PacketType(%d) = %q, want %q", i, got, w)
		}
	}
}
