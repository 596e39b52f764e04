package server

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/socketfleet/socketfleet/core/config"
)

// nested returns a JSON value nested depth arrays deep.
func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// Deeply nested JSON in an argument that a rule reads cost quadratic time
// and memory (a 14 KB argument nested 7,000 deep: 2.8 s and 750 MB). It is
// refused before any conversion; what the limit allows stays cheap; and a
// chat going on beside the attack loses nothing.
func TestDeeplyNestedArgumentsAreRefusedCheaply(t *testing.T) {
	_, ts := newTestInstance(t, testConfig)
	connect := func() *wsClient {
		c := dialWS(t, ts)
		c.send(`40`)
		c.read() // CONNECT reply
		c.read() // on_connect "auth" emit
		c.send(`421["join","lobby"]`)
		if got := c.read(); got != `431[{"ok":true}]` {
			t.Fatalf("join ack %q", got)
		}
		return c
	}
	alice, bob, attacker := connect(), connect(), connect()

	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	attack := func(depth int) string {
		attacker.send(`422["chat:message",{"room":` + nested(depth) + `}]`)
		return attacker.read()
	}

	const attacks = 4
	var answers []string
	bytes := allocated(func() {
		for range attacks {
			answers = append(answers, attack(7000))
		}
	})
	for _, a := range answers {
		if a != `432[{"ok":false,"error":"invalid event data"}]` {
			t.Fatalf("answer to a 7,000-deep argument: %q", a)
		}
	}
	if per := bytes / attacks; per > 1<<20 {
		t.Errorf("a 7,000-deep argument allocated %d bytes, want under 1 MB", per)
	}

	// At the limit the conversion happens and stays cheap; the room is not
	// a string, so the rule refuses it the same way.
	bytes = allocated(func() {
		if a := attack(config.MaxJSONDepth - 1); a != `432[{"ok":false,"error":"invalid event data"}]` {
			t.Errorf("answer at the limit: %q", a)
		}
	})
	if bytes > 1<<20 {
		t.Errorf("an argument %d deep allocated %d bytes, want under 1 MB", config.MaxJSONDepth-1, bytes)
	}

	// The chat beside it: every numbered message arrives, in order.
	for i := range 20 {
		alice.send(fmt.Sprintf(`42["chat:message",{"room":"lobby","seq":%d}]`, i))
	}
	for i := range 20 {
		want := fmt.Sprintf(`42["chat:message",{"room":"lobby","seq":%d}]`, i)
		for _, c := range []*wsClient{alice, bob, attacker} {
			if got := c.read(); got != want {
				t.Fatalf("message %d: got %q, want %q", i, got, want)
			}
		}
	}
}
