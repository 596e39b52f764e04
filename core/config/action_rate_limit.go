package config

import (
	"math"
	"time"
)

// rate_limit = "10/s" and rate_burst = 20 (event block attributes): a token
// bucket per socket and rule; an event finding it empty is refused. The
// burst defaults to the per-second rate rounded up, at least 1.

var rateLimitAction = action{attrs: []string{"rate_limit", "rate_burst"}, phase: phaseLimit, decode: decodeRateLimit}

type rateLimitStep struct {
	rate  float64 // tokens per second
	burst float64 // bucket size
}

// bucket is one socket's tokens for one rule (SocketState.buckets).
type bucket struct {
	tokens float64
	last   time.Time
}

func decodeRateLimit(d *decoder, ev *eventBody) []Step {
	var s rateLimitStep
	if attr := ev.attr("rate_limit"); attr != nil {
		var str string
		if d.str(attr, &str) {
			rate, err := ParseRate(str)
			if err != nil {
				d.attrError(attr, "Invalid rate limit", "%s", err)
			} else {
				s.rate = rate
				s.burst = float64(max(1, int(math.Ceil(rate-1e-9))))
			}
		}
	}
	if attr := ev.attr("rate_burst"); attr != nil {
		if ev.attr("rate_limit") == nil {
			d.attrError(attr, "Invalid attribute", "rate_burst needs a rate_limit in the same event block.")
		} else {
			burst := 0
			d.integer(attr, &burst, 1)
			if burst > 0 {
				s.burst = float64(burst)
			}
		}
	}
	if s.rate <= 0 {
		return nil
	}
	return []Step{&s}
}

var errRateLimited = &Refused{Reason: "rate limited"}

// Run takes a token from this socket's bucket for the rule.
func (s *rateLimitStep) Run(x *Exec) error {
	i := x.Rule.Index
	if i >= len(x.State.buckets) {
		grown := make([]bucket, i+1)
		copy(grown, x.State.buckets)
		x.State.buckets = grown
	}
	b := &x.State.buckets[i]
	now := x.Now()
	if b.last.IsZero() {
		b.tokens = s.burst
	} else {
		b.tokens = math.Min(s.burst, b.tokens+now.Sub(b.last).Seconds()*s.rate)
	}
	b.last = now
	if b.tokens < 1 {
		x.Stats.RateLimited.Add(1)
		return errRateLimited
	}
	b.tokens--
	return nil
}
