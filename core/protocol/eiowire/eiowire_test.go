package eiowire

import (
	"bytes"
	"errors"
	"testing"
)

func TestPacketTypeString(t *testing.T) {
	want := []string{"open", "close", "ping", "pong", "message", "upgrade", "noop"}
	for i, w := range want {
		if got := PacketType(i).String(); got != w {
			t.Errorf("PacketType(%d).String() = %q, want %q", i, got, w)
		}
		if !PacketType(i).Valid() {
			t.Errorf("PacketType(%d) not valid", i)
		}
	}
	if got := PacketType(7).String(); got != "PacketType(7)" {
		t.Errorf("PacketType(7).String() = %q", got)
	}
	if PacketType(7).Valid() {
		t.Error("PacketType(7) valid")
	}
}

func TestDecodeText(t *testing.T) {
	tests := []struct {
		in   string
		want Packet
		err  bool
	}{
		{in: `0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`,
			want: Packet{Type: Open, Data: []byte(`{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`)}},
		{in: "1", want: Packet{Type: Close, Data: []byte{}}},
		{in: "2", want: Packet{Type: Ping}},
		{in: "2probe", want: Packet{Type: Ping, Data: []byte("probe")}},
		{in: "3", want: Packet{Type: Pong}},
		{in: "3probe", want: Packet{Type: Pong, Data: []byte("probe")}},
		{in: "4hello", want: Packet{Type: Message, Data: []byte("hello")}},
		{in: `42["foo"]`, want: Packet{Type: Message, Data: []byte(`2["foo"]`)}},
		{in: "4", want: Packet{Type: Message}},
		{in: "5", want: Packet{Type: Upgrade}},
		{in: "6", want: Packet{Type: Noop}},
		{in: "bAQID", want: Packet{Type: Message, Data: []byte{1, 2, 3}, Binary: true}},
		{in: "bAQIDBA==", want: Packet{Type: Message, Data: []byte{1, 2, 3, 4}, Binary: true}},
		{in: "bAQIDBA", want: Packet{Type: Message, Data: []byte{1, 2, 3, 4}, Binary: true}}, // unpadded, like Node
		{in: "b", want: Packet{Type: Message, Data: []byte{}, Binary: true}},
		// invalid
		{in: "", err: true},
		{in: "7", err: true},
		{in: "9x", err: true},
		{in: "abc", err: true},
		{in: "/4", err: true},
		{in: " 4", err: true},
		{in: "b!!!!", err: true},
		{in: "bA", err: true},
		{in: "bAQ=D", err: true},
	}
	for _, tt := range tests {
		got, err := DecodeText([]byte(tt.in))
		if tt.err {
			if err == nil {
				t.Errorf("DecodeText(%q) = %+v, want error", tt.in, got)
			} else if !errors.Is(err, ErrInvalidPacket) {
				t.Errorf("DecodeText(%q) error %v does not wrap ErrInvalidPacket", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("DecodeText(%q) error: %v", tt.in, err)
			continue
		}
		if !equal(got, tt.want) {
			t.Errorf("DecodeText(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeTextAliases(t *testing.T) {
	frame := []byte("4hello")
	p, err := DecodeText(frame)
	if err != nil {
		t.Fatal(err)
	}
	frame[1] = 'J'
	if string(p.Data) != "Jello" {
		t.Errorf("Data does not alias frame: %q", p.Data)
	}
}

func equal(a, b Packet) bool {
	return a.Type == b.Type && a.Binary == b.Binary && bytes.Equal(a.Data, b.Data)
}

func collect(body string) ([]Packet, error) {
	var ps []Packet
	err := DecodePayload([]byte(body), func(p Packet) error {
		ps = append(ps, p)
		return nil
	})
	return ps, err
}

func TestDecodePayload(t *testing.T) {
	tests := []struct {
		in   string
		want []Packet
		err  bool
	}{
		{in: "4test1\x1e4test2\x1e4test3", want: []Packet{
			{Type: Message, Data: []byte("test1")},
			{Type: Message, Data: []byte("test2")},
			{Type: Message, Data: []byte("test3")},
		}},
		{in: "461-7[{\"_placeholder\":true,\"num\":0}]\x1ebAQID", want: []Packet{
			{Type: Message, Data: []byte(`61-7[{"_placeholder":true,"num":0}]`)},
			{Type: Message, Data: []byte{1, 2, 3}, Binary: true},
		}},
		{in: "1", want: []Packet{{Type: Close}}},
		{in: "6", want: []Packet{{Type: Noop}}},
		{in: "2probe", want: []Packet{{Type: Ping, Data: []byte("probe")}}},
		{in: `40{"token":"1"}`, want: []Packet{{Type: Message, Data: []byte(`0{"token":"1"}`)}}},
		{in: "3\x1e4x", want: []Packet{{Type: Pong}, {Type: Message, Data: []byte("x")}}},
		{in: "4\x1e4", want: []Packet{{Type: Message}, {Type: Message}}},
		// invalid
		{in: "", err: true},
		{in: "\x1e", err: true},
		{in: "4a\x1e", want: []Packet{{Type: Message, Data: []byte("a")}}, err: true},
		{in: "\x1e4a", err: true},
		{in: "4a\x1e\x1e4b", want: []Packet{{Type: Message, Data: []byte("a")}}, err: true},
		{in: "abc", err: true},
		{in: "4a\x1eabc\x1e4b", want: []Packet{{Type: Message, Data: []byte("a")}}, err: true},
		{in: "b!!", err: true},
		{in: "4a\x1eb$$$$", want: []Packet{{Type: Message, Data: []byte("a")}}, err: true},
		{in: "7", err: true},
	}
	for _, tt := range tests {
		got, err := collect(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("DecodePayload(%q): want error, got %+v", tt.in, got)
			} else if !errors.Is(err, ErrInvalidPayload) || (tt.in != "" && !errors.Is(err, ErrInvalidPacket)) {
				t.Errorf("DecodePayload(%q) error %v does not wrap the sentinels", tt.in, err)
			}
		} else if err != nil {
			t.Errorf("DecodePayload(%q) error: %v", tt.in, err)
		}
		if len(got) != len(tt.want) {
			t.Errorf("DecodePayload(%q) = %d packets %+v, want %d", tt.in, len(got), got, len(tt.want))
			continue
		}
		for i := range got {
			if !equal(got[i], tt.want[i]) {
				t.Errorf("DecodePayload(%q)[%d] = %+v, want %+v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

func TestDecodePayloadCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := DecodePayload([]byte("4a\x1e4b\x1e4c"), func(p Packet) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Errorf("got err %v after %d packets, want stop after 2", err, n)
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		ps          []Packet
		text        []string
		payload     string
		roundTripWS bool
	}{
		{
			ps:      []Packet{{Type: Message, Data: []byte("test1")}, {Type: Message, Data: []byte("test2")}, {Type: Message, Data: []byte("test3")}},
			text:    []string{"4test1", "4test2", "4test3"},
			payload: "4test1\x1e4test2\x1e4test3",
		},
		{
			ps:      []Packet{{Type: Message, Data: []byte(`61-7[{"_placeholder":true,"num":0}]`)}, {Type: Message, Data: []byte{1, 2, 3}, Binary: true}},
			text:    []string{`461-7[{"_placeholder":true,"num":0}]`, "bAQID"},
			payload: "461-7[{\"_placeholder\":true,\"num\":0}]\x1ebAQID",
		},
		{
			ps:      []Packet{{Type: Open, Data: []byte(`{"sid":"x"}`)}, {Type: Ping}, {Type: Noop}, {Type: Pong, Data: []byte("probe")}, {Type: Close}, {Type: Upgrade}},
			text:    []string{`0{"sid":"x"}`, "2", "6", "3probe", "1", "5"},
			payload: "0{\"sid\":\"x\"}\x1e2\x1e6\x1e3probe\x1e1\x1e5",
		},
		{
			ps:      []Packet{{Type: Message, Data: []byte{}, Binary: true}, {Type: Message, Data: []byte{0xff, 0xfe}, Binary: true}},
			text:    []string{"b", "b//4="},
			payload: "b\x1eb//4=",
		},
	}
	for _, tt := range tests {
		var payload []byte
		for i, p := range tt.ps {
			if got := string(AppendText(nil, p)); got != tt.text[i] {
				t.Errorf("AppendText(%+v) = %q, want %q", p, got, tt.text[i])
			}
			if got := string(AppendText([]byte("xx"), p)); got != "xx"+tt.text[i] {
				t.Errorf("AppendText(xx, %+v) = %q", p, got)
			}
			payload = AppendPayload(payload, p)
			q, err := DecodeText([]byte(tt.text[i]))
			if err != nil || !equal(p, q) {
				t.Errorf("round trip %+v: got %+v, %v", p, q, err)
			}
		}
		if string(payload) != tt.payload {
			t.Errorf("AppendPayload = %q, want %q", payload, tt.payload)
		}
		got, err := collect(string(payload))
		if err != nil || len(got) != len(tt.ps) {
			t.Errorf("decode %q: %+v, %v", payload, got, err)
			continue
		}
		for i := range got {
			if !equal(got[i], tt.ps[i]) {
				t.Errorf("payload round trip [%d]: got %+v, want %+v", i, got[i], tt.ps[i])
			}
		}
	}
}

func TestZeroAlloc(t *testing.T) {
	frame := []byte(`42["chat:message",{"room":"lobby","text":"hello world","from":"alice"}]`)
	body := []byte("4test1\x1e4test2\x1e4test3")
	var sink int
	fn := func(p Packet) error { sink += len(p.Data); return nil }
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		p, err := DecodeText(frame)
		if err != nil {
			t.Fatal(err)
		}
		sink += len(p.Data)
		if err := DecodePayload(body, fn); err != nil {
			t.Fatal(err)
		}
		buf = AppendPayload(AppendText(buf[:0], p), p)
	})
	if allocs != 0 {
		t.Errorf("text decode/encode allocates %v times per run", allocs)
	}
	_ = sink
}
