package config

import (
	"testing"
	"time"
)

func TestRecoveryBlock(t *testing.T) {
	if cfg := mustParse(t, `namespace "/" {}`); cfg.Server.Recovery != nil {
		t.Fatal("recovery on without the block")
	}
	r := mustParse(t, "server {\n  recovery {}\n}\nnamespace \"/\" {}").Server.Recovery
	if r == nil || r.MaxDisconnection != 2*time.Minute || !r.SkipAuth || r.BufferSize != 64<<20 || r.BufferEntries != 100000 {
		t.Fatalf("defaults: %+v", r)
	}
	if r.Range.Start.Line != 2 {
		t.Fatalf("block range %v", r.Range)
	}
	r = mustParse(t, `server {
  recovery {
    max_disconnection = "30s"
    skip_auth         = false
    buffer_size       = "1MB"
    buffer_entries    = 500
  }
}
namespace "/" {}`).Server.Recovery
	if r.MaxDisconnection != 30*time.Second || r.SkipAuth || r.BufferSize != 1e6 || r.BufferEntries != 500 {
		t.Fatalf("values: %+v", r)
	}
	for _, bad := range []struct{ src, summary string }{
		{`max_disconnection = "0s"`, "Invalid duration"},
		{`buffer_entries = 0`, "Invalid attribute value"},
		{`max_disconection = "1m"`, "Unsupported argument"},
	} {
		_, diags := Parse([]byte("server {\n  recovery {\n    "+bad.src+"\n  }\n}\nnamespace \"/\" {}"), "test.hcl")
		d := firstError(diags)
		if d == nil || d.Summary != bad.summary || d.Subject.Start.Line != 3 {
			t.Errorf("%s: got %v", bad.src, d)
		}
	}
}
