package config

import "github.com/hashicorp/hcl/v2"

// reply { event, args } (at most once): emit an event back to the sender only.

var replyAction = action{block: "reply", phase: phaseAction, decode: decodeReply}

var replySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "event", Required: true}, {Name: "args"}},
}

type replyStep struct {
	event string
	args  Args // default: passthrough
}

func decodeReply(d *decoder, ev *eventBody) []Step {
	b := d.single(ev.blocks("reply"), "reply", "an event block")
	if b == nil {
		return nil
	}
	c := d.content(b.Body, replySchema)
	s := &replyStep{args: Args{Passthrough: true}}
	if attr := c.Attributes["event"]; attr != nil && d.str(attr, &s.event) {
		d.eventName(s.event, attr.Expr.Range(), attr.Range)
	}
	if attr := c.Attributes["args"]; attr != nil {
		s.args = d.args(attr, ev.where, EventVariables)
	}
	return []Step{s}
}

func (s *replyStep) Run(x *Exec) error {
	if s.args.Passthrough {
		x.Socket.Emit(s.event, x.Args, x.Attachments)
		return nil
	}
	args, err := x.EvalArgs(s.args)
	if err != nil {
		return err
	}
	x.Socket.Emit(s.event, args, nil)
	return nil
}
