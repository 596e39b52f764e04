package routing

import (
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/socketfleet/socketfleet/core/config"
)

// A rule that fails on an event's data is a warn line with the failing
// expression's file:line, at most one per rule per 10 s (the next says how
// many were left out), and every failure is counted by rule.
func TestRuleErrorsAreWarnedPacedAndCounted(t *testing.T) {
	cfg, diags := config.Parse([]byte(`
namespace "/" {
  event "chat" {
    broadcast {
      to = args[0].rom
    }
  }
  event "other" {
    reply {
      event = "x"
      args  = [args[0].n]
    }
  }
}`), "test.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	logger, hook := test.NewNullLogger()
	stats := &Stats{}
	r := New(cfg.Namespace("/"), Plugins{}, stats, logrus.NewEntry(logger))
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	s := newFake("s1")

	warns := func() []*logrus.Entry {
		var out []*logrus.Entry
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.WarnLevel {
				out = append(out, e)
			}
		}
		return out
	}
	for range 5 {
		send(r, s, ev("chat", false, `{"room":"a"}`))
	}
	w := warns()
	if len(w) != 1 {
		t.Fatalf("%d warn lines for 5 failures in one window, want 1", len(w))
	}
	if w[0].Data["rule"] != "test.hcl:5" || w[0].Data["event"] != "chat" || w[0].Data["suppressed"] != int64(0) {
		t.Fatalf("warn line fields %v", w[0].Data)
	}

	// Another rule has its own window.
	send(r, s, ev("other", false, `{}`))
	if w = warns(); len(w) != 2 || w[1].Data["rule"] != "test.hcl:11" {
		t.Fatalf("other rule: %d lines, last %v", len(w), w[len(w)-1].Data)
	}

	// Within the window: nothing more; after it, one line counting the rest.
	now = now.Add(9 * time.Second)
	send(r, s, ev("chat", false, `{}`))
	if len(warns()) != 2 {
		t.Fatal("a second line within 10s")
	}
	now = now.Add(2 * time.Second)
	send(r, s, ev("chat", false, `{}`))
	if w = warns(); len(w) != 3 || w[2].Data["suppressed"] != int64(5) {
		t.Fatalf("after the window: %d lines, last %v", len(w), w[len(w)-1].Data)
	}

	eq(t, "rule errors", stats.RuleErrors.Load(), 8)
	got := stats.RuleErrorCounts()
	want := []RuleErrorCount{{"/", "chat", "test.hcl:5", 7}, {"/", "other", "test.hcl:11", 1}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
}
