package siowire

import "testing"

var (
	chatMsg    = []byte(`2["chat:message",{"room":"lobby","text":"hello world","from":"alice"}]`)
	binMsg     = []byte(`51-["upload",{"name":"a.png","file":{"_placeholder":true,"num":0}}]`)
	binAtt     = make([]byte, 1024)
	ackMsg     = []byte(`2/admin,13["x"]`)
	sinkPacket *Packet
	sinkBytes  [][]byte
	sinkName   string
)

func BenchmarkDecodeEvent(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(chatMsg)))
	d := NewDecoder(10)
	for b.Loop() {
		p, err := d.AddText(chatMsg)
		if err != nil || p == nil {
			b.Fatal(err)
		}
		sinkPacket = p
	}
}

func BenchmarkDecodeEventNamespaceAck(b *testing.B) {
	b.ReportAllocs()
	d := NewDecoder(10)
	for b.Loop() {
		p, err := d.AddText(ackMsg)
		if err != nil || p == nil {
			b.Fatal(err)
		}
		sinkPacket = p
	}
}

func BenchmarkDecodeBinaryEvent(b *testing.B) {
	b.ReportAllocs()
	d := NewDecoder(10)
	for b.Loop() {
		if _, err := d.AddText(binMsg); err != nil {
			b.Fatal(err)
		}
		p, err := d.AddBinary(binAtt)
		if err != nil || p == nil {
			b.Fatal(err)
		}
		sinkPacket = p
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	b.ReportAllocs()
	p, _ := NewDecoder(10).AddText(chatMsg)
	buf := make([]byte, 0, 128)
	for b.Loop() {
		buf = p.AppendEncoded(buf[:0])
	}
}

// BenchmarkBuildEvent builds the chat event from parts, as a server emit does.
func BenchmarkBuildEvent(b *testing.B) {
	b.ReportAllocs()
	arg := []byte(`{"room":"lobby","text":"hello world","from":"alice"}`)
	buf := make([]byte, 0, 128)
	var name [32]byte
	for b.Loop() {
		buf = AppendHeader(buf[:0], Event, "/chat", 0, 7, true)
		buf = AppendArray(buf, AppendString(name[:0], "chat:message"), arg)
	}
}

func BenchmarkEncodeBinaryEvent(b *testing.B) {
	b.ReportAllocs()
	d := NewDecoder(10)
	_, _ = d.AddText(binMsg)
	p, _ := d.AddBinary(binAtt)
	buf := make([]byte, 0, 128)
	for b.Loop() {
		buf = p.AppendEncoded(buf[:0])
	}
}

func BenchmarkSplitArray(b *testing.B) {
	b.ReportAllocs()
	data := chatMsg[1:]
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		elems, err := SplitArray(data)
		if err != nil {
			b.Fatal(err)
		}
		sinkBytes = elems
	}
}

func BenchmarkEventName(b *testing.B) {
	b.ReportAllocs()
	p, _ := NewDecoder(10).AddText(chatMsg)
	for b.Loop() {
		name, args, err := EventName(p)
		if err != nil {
			b.Fatal(err)
		}
		sinkName, sinkBytes = name, args
	}
}

func BenchmarkValid(b *testing.B) {
	b.ReportAllocs()
	data := chatMsg[1:]
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if !Valid(data) {
			b.Fatal("invalid")
		}
	}
}
