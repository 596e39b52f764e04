package main

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/sdk"
)

func TestAcceptRules(t *testing.T) {
	msg := func(uid, nsp string) string {
		b, err := encodeMessage(uid, &sdk.AdapterMessage{Namespace: nsp, Data: []byte(`["ev",1]`)})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct {
		name, channel, payload string
		ok                     bool
	}{
		{"other instance", "socket.io#/chat#", msg("other1", "/chat"), true},
		{"room channel", "socket.io#/chat#room1#", msg("other1", "/chat"), true},
		{"own uid", "socket.io#/chat#", msg("self01", "/chat"), false},
		{"namespace mismatch", "socket.io#/#", msg("other1", "/chat"), false},
		{"namespace prefix only", "socket.io#/chatroom#", msg("other1", "/chat"), false},
		{"no separator", "socket.io#/chat", msg("other1", "/chat"), false},
		{"other key", "other#/chat#", msg("other1", "/chat"), false},
	} {
		m, ok := accept("socket.io#", "self01", &redis.Message{Channel: c.channel, Payload: c.payload})
		if ok != c.ok {
			t.Errorf("%s: accepted %v, want %v", c.name, ok, c.ok)
		}
		if ok && (m.Namespace != "/chat" || string(m.Data) != `["ev",1]`) {
			t.Errorf("%s: got %q %s", c.name, m.Namespace, m.Data)
		}
	}
}

func BenchmarkAcceptOwn(b *testing.B) {
	p, _ := encodeMessage("self01", &sdk.AdapterMessage{Namespace: "/", Data: []byte(`["ev",{"a":[1,2,3],"b":"some text here"},42]`)})
	rm := &redis.Message{Channel: "socket.io#/#", Payload: string(p)}
	b.ReportAllocs()
	for b.Loop() {
		accept("socket.io#", "self01", rm)
	}
}
