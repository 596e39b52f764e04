package server

import (
	"fmt"
	"strings"
	"testing"
)

// Socket-id rooms (issue 13): another socket's id is its private room. A
// join rule with allow = ["*"] refuses it, so the joiner never gets that
// socket's private messages; a join block that says allow_socket_ids =
// true (its room still matching allow) joins it, and the joiner gets them,
// as does the socket itself.

const socketRoomsConfig = `
namespace "/" {
  event "join" {
    join {
      room  = args[0]
      allow = ["*"]
    }
  }
  event "watch" {
    join {
      room             = args[0]
      allow            = ["*"]
      allow_socket_ids = true
    }
  }
  event "private" {
    broadcast {
      to             = args[0]
      require_member = false
    }
  }
}
`

func TestSocketIDRooms(t *testing.T) {
	_, ts := newLimitedInstance(t, socketRoomsConfig, Limits{})
	victim, victimID := connectWS(t, ts.URL)
	other, otherID := connectWS(t, ts.URL)
	sender, _ := connectWS(t, ts.URL)

	// allow = ["*"]: refused, and the private message reaches the victim alone.
	other.send(fmt.Sprintf(`421["join",%q]`, victimID))
	if got, want := other.read(), `431[{"ok":false,"error":"room is another socket's id"}]`; got != want {
		t.Fatalf("join of another socket's id with allow [\"*\"]: %q, want %q", got, want)
	}
	sender.send(fmt.Sprintf(`42["private",%q,"one"]`, victimID))
	if got := victim.read(); !strings.Contains(got, `"one"`) {
		t.Fatalf("victim got %q", got)
	}
	// Once the victim has it, the broadcast is done: the next thing the
	// other socket reads must be its own marker, not "one".
	other.send(fmt.Sprintf(`42["private",%q,"marker"]`, otherID))
	if got := other.read(); got != fmt.Sprintf(`42["private",%q,"marker"]`, otherID) {
		t.Fatalf("a socket refused the victim's room received %q", got)
	}

	// allow_socket_ids = true: joined; both receive, once each.
	other.send(fmt.Sprintf(`422["watch",%q]`, victimID))
	if got, want := other.read(), `432[{"ok":true}]`; got != want {
		t.Fatalf("explicit join of the socket's id: %q, want %q", got, want)
	}
	sender.send(fmt.Sprintf(`42["private",%q,"two"]`, victimID))
	for name, c := range map[string]*wsClient{"victim": victim, "watcher": other} {
		if got := c.read(); got != fmt.Sprintf(`42["private",%q,"two"]`, victimID) {
			t.Fatalf("%s got %q", name, got)
		}
	}
	sender.send(fmt.Sprintf(`42["private",%q,"three"]`, victimID))
	if got := other.read(); !strings.Contains(got, `"three"`) {
		t.Fatalf("watcher got %q (a duplicate of two?)", got)
	}
	if got := victim.read(); !strings.Contains(got, `"three"`) {
		t.Fatalf("victim got %q", got)
	}
}
