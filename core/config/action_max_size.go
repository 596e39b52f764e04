package config

// max_size = "4KB" (event block attribute): an event larger on the wire
// (JSON plus attachments) is refused before anything else runs. max_payload
// still applies to every packet.

var maxSizeAction = action{attrs: []string{"max_size"}, phase: phaseLimit, decode: decodeMaxSize}

type maxSizeStep struct{ max int64 }

func decodeMaxSize(d *decoder, ev *eventBody) []Step {
	var n int64
	d.size(ev.attr("max_size"), &n)
	if n <= 0 {
		return nil
	}
	return []Step{&maxSizeStep{max: n}}
}

var errTooLarge = &Refused{Reason: "payload too large"}

func (s *maxSizeStep) Run(x *Exec) error {
	if int64(x.Size) > s.max {
		x.Stats.TooLarge.Add(1)
		return errTooLarge
	}
	return nil
}
