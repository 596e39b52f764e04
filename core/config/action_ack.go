package config

// ack = [...] (event block attribute): the arguments of the acknowledgement,
// when the client asked for one; `ack = args` sends the received arguments
// back unchanged. Without it, the client gets {"ok":true}, or a refusal.

var ackAction = action{attrs: []string{"ack"}, phase: phaseAnswer, decode: decodeAck}

type ackStep struct{ args Args }

func decodeAck(d *decoder, ev *eventBody) []Step {
	attr := ev.attr("ack")
	if attr == nil {
		return nil
	}
	return []Step{&ackStep{args: d.args(attr, ev.where, EventVariables)}}
}

func (s *ackStep) Run(x *Exec) error {
	if s.args.Passthrough {
		x.Socket.Ack(x.Args, x.Attachments)
		return nil
	}
	args, err := x.EvalArgs(s.args)
	if err != nil {
		return err
	}
	x.Socket.Ack(args, nil)
	return nil
}
