package eiowire

import (
	"bytes"
	"testing"
)

var textSeeds = []string{
	"", "0", "1", "2", "2probe", "3probe", "4", "4hello", "5", "6", "7", "abc",
	`0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`,
	`42["chat:message",{"room":"lobby","text":"hello world","from":"alice"}]`,
	"bAQID", "bAQIDBA==", "bAQIDBA", "b", "b!!", "bA", "b\nAQID",
}

// FuzzDecodeText: never panics; an accepted frame re-encodes to a frame that
// decodes to an equal packet, and text frames re-encode byte-exactly.
func FuzzDecodeText(f *testing.F) {
	for _, s := range textSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		p, err := DecodeText(frame)
		if err != nil {
			return
		}
		if !p.Type.Valid() || (p.Binary && p.Type != Message) {
			t.Fatalf("bad packet %+v", p)
		}
		enc := AppendText(nil, p)
		if !p.Binary && !bytes.Equal(enc, frame) {
			t.Fatalf("text re-encoding %q != %q", enc, frame)
		}
		q, err := DecodeText(enc)
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", enc, err)
		}
		if !equal(p, q) {
			t.Fatalf("round trip %+v -> %q -> %+v", p, enc, q)
		}
	})
}

// FuzzDecodePayload: never panics; the accepted packets re-encode to a payload
// that decodes to the same packets, and an all-text payload re-encodes
// byte-exactly.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range textSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		"4test1\x1e4test2\x1e4test3",
		"461-7[{\"_placeholder\":true,\"num\":0}]\x1ebAQID",
		"\x1e", "4a\x1e", "\x1e4a", "4a\x1e\x1e4b", "3\x1e4x\x1eb", "4a\x1eb$$$$",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var ps []Packet
		allText := true
		err := DecodePayload(body, func(p Packet) error {
			if !p.Type.Valid() || (p.Binary && p.Type != Message) {
				t.Fatalf("bad packet %+v", p)
			}
			if p.Binary {
				allText = false
			} else if bytes.IndexByte(p.Data, Separator) >= 0 {
				t.Fatalf("text packet contains a separator: %+v", p)
			}
			ps = append(ps, p)
			return nil
		})
		if err != nil {
			return
		}
		if len(ps) == 0 {
			t.Fatal("accepted payload with no packets")
		}
		var enc []byte
		for _, p := range ps {
			enc = AppendPayload(enc, p)
		}
		if allText && !bytes.Equal(enc, body) {
			t.Fatalf("re-encoding %q != %q", enc, body)
		}
		i := 0
		err = DecodePayload(enc, func(q Packet) error {
			if i >= len(ps) || !equal(ps[i], q) {
				t.Fatalf("round trip mismatch at %d: %q", i, enc)
			}
			i++
			return nil
		})
		if err != nil || i != len(ps) {
			t.Fatalf("re-encoded %q: %d packets, %v", enc, i, err)
		}
	})
}
