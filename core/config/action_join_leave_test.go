package config

import (
	"strings"
	"testing"
)

// TestJoinAllowSocketIDs: allow_socket_ids is a join block's bool,
// false unless said; a leave block refuses it.
func TestJoinAllowSocketIDs(t *testing.T) {
	cfg := mustParse(t, `
namespace "/" {
  event "a" {
    join {
      room  = args[0]
      allow = ["*"]
    }
  }
  event "b" {
    join {
      room             = args[0]
      allow            = ["*"]
      allow_socket_ids = true
    }
  }
}`)
	ns := cfg.Namespace("/")
	if s := stepsOf[*roomStep](ns.Events["a"]); len(s) != 1 || s[0].socketIDs {
		t.Fatalf("a: %+v", s)
	}
	if s := stepsOf[*roomStep](ns.Events["b"]); len(s) != 1 || !s[0].socketIDs {
		t.Fatalf("b: %+v", s)
	}
	for src, want := range map[string]string{
		`leave {` + "\n" + `room = "x"` + "\n" + `allow_socket_ids = true` + "\n}": "allow_socket_ids is for join blocks",
		`join {` + "\n" + `room = "x"` + "\n" + `allow_socket_ids = "yes"` + "\n}": "bool",
	} {
		_, diags := Parse([]byte("namespace \"/\" {\n  event \"e\" {\n"+src+"\n  }\n}\n"), "test.hcl")
		if !diags.HasErrors() || !strings.Contains(diags.Error(), want) {
			t.Errorf("%s: %v, want an error saying %s", src, diags, want)
		}
	}
}
