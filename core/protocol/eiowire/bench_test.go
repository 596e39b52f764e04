package eiowire

import "testing"

var (
	chatFrame   = []byte(`42["chat:message",{"room":"lobby","text":"hello world","from":"alice"}]`)
	pollBody    = []byte("42[\"chat:message\",{\"text\":\"a\"}]\x1e42[\"chat:message\",{\"text\":\"b\"}]\x1e42[\"chat:message\",{\"text\":\"c\"}]")
	binaryBody  = []byte("451-[\"upload\",{\"_placeholder\":true,\"num\":0}]\x1eb" + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==")
	sinkPacket  Packet
	sinkCounter int
)

func BenchmarkDecodeText(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(chatFrame)))
	for b.Loop() {
		p, err := DecodeText(chatFrame)
		if err != nil {
			b.Fatal(err)
		}
		sinkPacket = p
	}
}

func BenchmarkAppendText(b *testing.B) {
	b.ReportAllocs()
	p := Packet{Type: Message, Data: chatFrame[1:]}
	buf := make([]byte, 0, 128)
	for b.Loop() {
		buf = AppendText(buf[:0], p)
	}
}

func BenchmarkDecodePayload3(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(pollBody)))
	fn := func(p Packet) error { sinkCounter += len(p.Data); return nil }
	for b.Loop() {
		if err := DecodePayload(pollBody, fn); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePayloadBinary(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(binaryBody)))
	fn := func(p Packet) error { sinkCounter += len(p.Data); return nil }
	for b.Loop() {
		if err := DecodePayload(binaryBody, fn); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendPayload3(b *testing.B) {
	b.ReportAllocs()
	var ps []Packet
	_ = DecodePayload(pollBody, func(p Packet) error { ps = append(ps, p); return nil })
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = buf[:0]
		for _, p := range ps {
			buf = AppendPayload(buf, p)
		}
	}
}

func BenchmarkAppendPayloadBinary(b *testing.B) {
	b.ReportAllocs()
	var ps []Packet
	_ = DecodePayload(binaryBody, func(p Packet) error { ps = append(ps, p); return nil })
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = buf[:0]
		for _, p := range ps {
			buf = AppendPayload(buf, p)
		}
	}
}
