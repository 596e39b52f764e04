package config

import (
	"strings"
	"testing"
)

func TestEmitToSenderUserDecoding(t *testing.T) {
	cfg := mustParse(t, `
namespace "/" {
  event "read" {
    emit_to_sender_user {}
    emit_to_sender_user {
      event         = "read:sync"
      args          = [args[0].id, socket.id]
      except_sender = true
    }
  }
}`)
	s := stepsOf[*emitToSenderUserStep](cfg.Namespace("/").Events["read"])
	if len(s) != 2 || s[0].event != "read" || !s[0].args.Passthrough || s[0].exceptSender ||
		s[1].event != "read:sync" || s[1].args.Passthrough || !s[1].exceptSender {
		t.Fatalf("steps %+v", s)
	}

	for src, want := range map[string]string{
		`emit_to_sender_user { event = "connect" }`: "test.hcl:4:35: Reserved event name",
		`emit_to_sender_user { to = "x" }`:          `test.hcl:4:27: Unsupported argument; An argument named "to" is not expected here.`,
		`emit_to_sender_user { args = [argz] }`:     `test.hcl:4:35: Unknown variable`,
	} {
		_, diags := Parse([]byte("namespace \"/\" {\n  event \"e\" {\n\n    "+src+"\n  }\n}\n"), "test.hcl")
		d := firstError(diags)
		if d == nil {
			t.Errorf("%s: no error", src)
			continue
		}
		got := rangeStart(*d.Subject) + ": " + d.Summary + "; " + d.Detail
		if !strings.HasPrefix(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", src, got, want)
		}
	}
}
