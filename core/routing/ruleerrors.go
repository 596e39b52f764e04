package routing

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/socketfleet/socketfleet/core/config"
)

// ruleErrorLogEvery bounds the warn lines of one failing rule: a client
// that sends bad data in a loop must not flood the log.
const ruleErrorLogEvery = 10 * time.Second

// RuleErrorCount is how often one rule's expression failed at run time.
type RuleErrorCount struct {
	Namespace, Event string
	Rule             string // "file:line" of the failing expression (else of the event block)
	Count            int64
}

// ruleErrors counts run-time failures by rule and paces their warn lines.
// It is taken only on the failure path, never by an event that succeeds.
type ruleErrors struct {
	mu sync.Mutex
	m  map[ruleErrorKey]*ruleErrorEntry
}

type ruleErrorKey struct{ ns, event, rule string }

type ruleErrorEntry struct {
	count      int64
	logged     time.Time // last warn line
	suppressed int64     // failures since it, not logged
}

// note counts a failure and says whether to log it now, and how many
// failures went unlogged since the last line.
func (re *ruleErrors) note(k ruleErrorKey, now time.Time) (log bool, suppressed int64) {
	re.mu.Lock()
	defer re.mu.Unlock()
	if re.m == nil {
		re.m = map[ruleErrorKey]*ruleErrorEntry{}
	}
	e := re.m[k]
	if e == nil {
		e = &ruleErrorEntry{}
		re.m[k] = e
	}
	e.count++
	if !e.logged.IsZero() && now.Sub(e.logged) < ruleErrorLogEvery {
		e.suppressed++
		return false, 0
	}
	suppressed, e.suppressed, e.logged = e.suppressed, 0, now
	return true, suppressed
}

// RuleErrorCounts lists the failure counts by rule, sorted.
func (s *Stats) RuleErrorCounts() []RuleErrorCount {
	re := &s.ruleErrs
	re.mu.Lock()
	out := make([]RuleErrorCount, 0, len(re.m))
	for k, e := range re.m {
		out = append(out, RuleErrorCount{Namespace: k.ns, Event: k.event, Rule: k.rule, Count: e.count})
	}
	re.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Event != b.Event {
			return a.Event < b.Event
		}
		return a.Rule < b.Rule
	})
	return out
}

// ruleWhere is the "file:line" of what failed: the expression a diagnostic
// points at, else the event block.
func ruleWhere(err error, ru *config.EventRule) string {
	var diags hcl.Diagnostics
	if errors.As(err, &diags) {
		for _, d := range diags {
			if d.Severity == hcl.DiagError && d.Subject != nil {
				return fmt.Sprintf("%s:%d", d.Subject.Filename, d.Subject.Start.Line)
			}
		}
	}
	return fmt.Sprintf("%s:%d", ru.DeclRange.Filename, ru.DeclRange.Start.Line)
}
