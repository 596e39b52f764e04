package config

import (
	"github.com/hashicorp/hcl/v2"

	"github.com/socketfleet/socketfleet/core/protocol/siowire"
)

// server_emit { event, args } (any number): a server-side emit to every
// instance (this one included) and to Node servers on the same adapter;
// each runs its server_event rule of that name. Sent without waiting.

var serverEmitAction = action{block: "server_emit", phase: phaseAction, decode: decodeServerEmit}

var serverEmitSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "event"}, {Name: "args"}},
}

type serverEmitStep struct {
	event string // default: the received event name
	args  Args   // default: passthrough
}

func decodeServerEmit(d *decoder, ev *eventBody) []Step {
	var steps []Step
	for _, b := range ev.blocks("server_emit") {
		c := d.content(b.Body, serverEmitSchema)
		s := &serverEmitStep{event: ev.name, args: Args{Passthrough: true}}
		if attr := c.Attributes["event"]; attr != nil && d.str(attr, &s.event) {
			d.eventName(s.event, attr.Expr.Range(), attr.Range)
		}
		if attr := c.Attributes["args"]; attr != nil {
			s.args = d.args(attr, ev.where, EventVariables)
		}
		steps = append(steps, s)
	}
	return steps
}

func (s *serverEmitStep) Run(x *Exec) error {
	var data []byte
	var atts [][]byte
	switch {
	case s.args.Passthrough && s.event == x.Name:
		data, atts = x.Data, x.Attachments
	case s.args.Passthrough:
		data, atts = siowire.AppendEvent(nil, s.event, x.Args), x.Attachments
	default:
		args, err := x.EvalArgs(s.args)
		if err != nil {
			return err
		}
		data = siowire.AppendEvent(nil, s.event, args)
	}
	x.Stats.ServerEmits.Add(1)
	x.Socket.ServerSideEmit(data, atts)
	return nil
}
