package server

import (
	"strings"
	"testing"
	"time"
)

const rulesConfig = `
namespace "/" {
  unknown_events = "disconnect"
  event "join" {
    join {
      room  = args[0]
      allow = ["public:*", "user:${auth.user}"]
    }
  }
  event "leave" {
    leave { room = args[0] }
  }
  event "shout" {
    max_size   = "64B"
    rate_limit = "2/s"
    rate_burst = 2
    broadcast {
      to            = args[0].room
      except_sender = true
      event         = "heard"
      args          = [args[0].text, socket.id]
    }
    ack = [{ sent = true, by = auth.user }]
  }
  event "everyone" {
    broadcast {}
  }
}
`

func connectAs(t *testing.T, c *wsClient, auth string) string {
	t.Helper()
	c.send(`40` + auth)
	got := c.read()
	if !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("connect: %q", got)
	}
	return got[len(`40{"sid":"`) : len(got)-2]
}

func TestRuleAllowTemplatesUseAuth(t *testing.T) {
	_, ts := newTestInstance(t, rulesConfig)
	c := dialWS(t, ts)
	connectAs(t, c, `{"user":"ann"}`)
	for _, tc := range []struct{ room, want string }{
		{"user:ann", `{"ok":true}`},
		{"user:bob", `{"ok":false,"error":"room not allowed"}`},
		{"public:x", `{"ok":true}`},
		{"private", `{"ok":false,"error":"room not allowed"}`},
	} {
		c.send(`421["join","` + tc.room + `"]`)
		if got := c.read(); got != `431[`+tc.want+`]` {
			t.Errorf("join %s: %q", tc.room, got)
		}
	}
	// A socket without auth.user matches no user:* room.
	d := dialWS(t, ts)
	connectAs(t, d, ``)
	d.send(`421["join","user:"]`)
	if got := d.read(); got != `431[{"ok":false,"error":"room not allowed"}]` {
		t.Errorf("join without auth.user: %q", got)
	}
}

func TestRuleBroadcastExceptSenderEvaluatedArgsAndLimits(t *testing.T) {
	_, ts := newTestInstance(t, rulesConfig)
	a, b := dialWS(t, ts), dialWS(t, ts)
	aID := connectAs(t, a, `{"user":"ann"}`)
	connectAs(t, b, `{"user":"bob"}`)
	for _, c := range []*wsClient{a, b} {
		c.send(`421["join","public:hall"]`)
		c.read()
	}
	a.send(`422["shout",{"room":"public:hall","text":"hey"}]`)
	if got := a.read(); got != `432[{"by":"ann","sent":true}]` {
		t.Fatalf("ack %q", got)
	}
	if got := b.read(); got != `42["heard","hey","`+aID+`"]` {
		t.Fatalf("broadcast %q", got)
	}
	// Too large for max_size.
	a.send(`423["shout",{"room":"public:hall","text":"` + strings.Repeat("x", 80) + `"}]`)
	if got := a.read(); got != `433[{"ok":false,"error":"payload too large"}]` {
		t.Fatalf("oversized %q", got)
	}
	// The burst of 2: the first shout took one token, "1" takes the other,
	// "2" is refused (refill is 2 tokens/s; these run within milliseconds).
	a.send(`424["shout",{"room":"public:hall","text":"1"}]`)
	if got := a.read(); got != `434[{"by":"ann","sent":true}]` {
		t.Fatalf("second shout %q", got)
	}
	b.read()
	a.send(`425["shout",{"room":"public:hall","text":"2"}]`)
	if got := a.read(); got != `435[{"ok":false,"error":"rate limited"}]` {
		t.Fatalf("rate limit not applied: %q", got)
	}
	// After the bucket refills, shouting works again.
	time.Sleep(600 * time.Millisecond)
	a.send(`427["shout",{"room":"public:hall","text":"again"}]`)
	if got := a.read(); got != `437[{"by":"ann","sent":true}]` {
		t.Fatalf("after refill %q", got)
	}
}

func TestRuleBroadcastToNamespaceAndUnknownEventDisconnect(t *testing.T) {
	_, ts := newTestInstance(t, rulesConfig)
	a, b := dialWS(t, ts), dialWS(t, ts)
	connectAs(t, a, ``)
	connectAs(t, b, ``)
	a.send(`42["everyone",{"n":1}]`)
	for _, c := range []*wsClient{a, b} {
		if got := c.read(); got != `42["everyone",{"n":1}]` {
			t.Fatalf("namespace broadcast %q", got)
		}
	}
	// An event no rule names: the socket is disconnected from the namespace.
	a.send(`42["whatever"]`)
	if got := a.read(); got != `41` {
		t.Fatalf("want DISCONNECT, got %q", got)
	}
	// It no longer receives namespace broadcasts.
	b.send(`42["everyone",2]`)
	if got := b.read(); got != `42["everyone",2]` {
		t.Fatalf("b %q", got)
	}
	a.send(`40`)
	if got := a.read(); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("reconnect to namespace on the same connection: %q", got)
	}
}
