package server

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

const recoveryConfig = `
server {
  recovery {
    max_disconnection = "%s"
  }
}
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
  event "say" {
    broadcast {
      to             = args[0]
      event          = "said"
      args           = [args[1]]
      require_member = false
    }
  }
  event "all" {
    broadcast {
      event = "said"
      args  = [args[0]]
    }
  }
  event "whoami" {
    reply { event = "me" }
  }
}
`

var connectReply = regexp.MustCompile(`^40\{"sid":"([^"]+)","pid":"([^"]+)"\}$`)

// connectRecovering sends CONNECT with auth and returns the packets that
// came before the CONNECT reply, and the reply's sid and pid.
func connectRecovering(t *testing.T, c *wsClient, auth string) (before []string, sid, pid string) {
	t.Helper()
	c.send("40" + auth)
	for {
		p := c.read()
		if m := connectReply.FindStringSubmatch(p); m != nil {
			return before, m[1], m[2]
		}
		if !strings.HasPrefix(p, "42") {
			t.Fatalf("before the CONNECT reply: %q", p)
		}
		before = append(before, p)
	}
}

// said decodes 42["said",n,"offset"].
func said(t *testing.T, p string) (n int, offset string) {
	t.Helper()
	var arr []any
	if !strings.HasPrefix(p, "42") || json.Unmarshal([]byte(p[2:]), &arr) != nil || len(arr) != 3 || arr[0] != "said" {
		t.Fatalf("not a numbered said: %q", p)
	}
	off, ok := arr[2].(string)
	if !ok {
		t.Fatalf("no offset: %q", p)
	}
	return int(arr[1].(float64)), off
}

func TestRecoverySingleInstance(t *testing.T) {
	_, ts := newTestInstance(t, fmt.Sprintf(recoveryConfig, "2m"))
	pub := dialWS(t, ts)
	connectRecovering(t, pub, "")

	c := dialWS(t, ts)
	before, sid, pid := connectRecovering(t, c, "")
	if len(before) != 0 {
		t.Fatalf("packets before a fresh CONNECT reply: %q", before)
	}
	c.send(`421["join","r"]`)
	if got := c.read(); got != `431[{"ok":true}]` {
		t.Fatalf("join ack %q", got)
	}
	pub.send(`42["say","r",1]`)
	n, offset := said(t, c.read())
	if n != 1 {
		t.Fatalf("got %d", n)
	}
	// The connection drops; messages go on.
	c.c.Close()
	time.Sleep(100 * time.Millisecond)
	for i := 2; i <= 4; i++ {
		pub.send(fmt.Sprintf(`42["say","r",%d]`, i))
	}
	time.Sleep(100 * time.Millisecond)

	c2 := dialWS(t, ts)
	before, sid2, pid2 := connectRecovering(t, c2, fmt.Sprintf(`{"pid":%q,"offset":%q}`, pid, offset))
	if sid2 != sid || pid2 != pid {
		t.Fatalf("not recovered: sid %s→%s pid %s→%s", sid, sid2, pid, pid2)
	}
	var got []int
	for _, p := range before {
		n, offset = said(t, p)
		got = append(got, n)
	}
	if fmt.Sprint(got) != "[2 3 4]" {
		t.Fatalf("missed packets %v, want [2 3 4]", got)
	}
	// Still in its room without joining again.
	pub.send(`42["say","r",5]`)
	if n, _ := said(t, c2.read()); n != 5 {
		t.Fatalf("after recovery got %d", n)
	}
	// A reply to the socket is numbered too.
	c2.send(`42["whoami"]`)
	if p := c2.read(); !strings.HasPrefix(p, `42["me","`) {
		t.Fatalf("reply %q", p)
	}

	// An unknown pid, or one already taken, gives a new session.
	c3 := dialWS(t, ts)
	_, sid3, pid3 := connectRecovering(t, c3, fmt.Sprintf(`{"pid":%q,"offset":%q}`, pid, offset))
	if sid3 == sid || pid3 == pid {
		t.Fatalf("a session recovered twice: %s %s", sid3, pid3)
	}
}

func TestRecoveryExpiresAndOffsetsNeedTheBlock(t *testing.T) {
	_, ts := newTestInstance(t, fmt.Sprintf(recoveryConfig, "200ms"))
	c := dialWS(t, ts)
	_, sid, pid := connectRecovering(t, c, "")
	c.c.Close()
	time.Sleep(400 * time.Millisecond)
	c2 := dialWS(t, ts)
	_, sid2, _ := connectRecovering(t, c2, fmt.Sprintf(`{"pid":%q,"offset":"0-0"}`, pid))
	if sid2 == sid {
		t.Fatal("an expired session was recovered")
	}

	// Without the block: no pid, no offset.
	_, plain := newTestInstance(t, strings.Replace(fmt.Sprintf(recoveryConfig, "1s"), "recovery {\n    max_disconnection = \"1s\"\n  }", "", 1))
	p := dialWS(t, plain)
	p.send("40")
	if got := p.read(); !regexp.MustCompile(`^40\{"sid":"[^"]+"\}$`).MatchString(got) {
		t.Fatalf("CONNECT reply without recovery %q", got)
	}
	p.send(`42["all",1]`)
	if got := p.read(); got != `42["said",1]` {
		t.Fatalf("broadcast without recovery %q", got)
	}
}
