package config

// Typed views of a rule's decoded steps, for the decoding tests.

func stepsOf[T Step](r *EventRule) []T {
	var out []T
	all := append(append([]Step(nil), r.Limits...), r.Steps...)
	if r.Answer != nil {
		all = append(all, r.Answer)
	}
	for _, s := range all {
		if t, ok := s.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

func firstOf[T Step](r *EventRule) T {
	var zero T
	if s := stepsOf[T](r); len(s) > 0 {
		return s[0]
	}
	return zero
}

// roomOf returns the rule's join (join = true) or leave step, or nil.
func roomOf(r *EventRule, join bool) *roomStep {
	for _, s := range stepsOf[*roomStep](r) {
		if s.join == join {
			return s
		}
	}
	return nil
}

// ackOf returns the ack attribute's arguments, or nil.
func ackOf(r *EventRule) *Args {
	if s := firstOf[*ackStep](r); s != nil {
		return &s.args
	}
	return nil
}

func maxSizeOf(r *EventRule) int64 {
	if s := firstOf[*maxSizeStep](r); s != nil {
		return s.max
	}
	return 0
}

func rateOf(r *EventRule) (rate float64, burst int) {
	if s := firstOf[*rateLimitStep](r); s != nil {
		return s.rate, int(s.burst)
	}
	return 0, 0
}
