package config

import (
	"github.com/hashicorp/hcl/v2"
)

// broadcast { to, event, args, except_sender, require_member } (any
// number): relay to rooms, or the whole namespace, on every instance. A
// sender not in the target room(s) (require_member, the default) skips that
// broadcast, and a default ack then refuses.

var broadcastAction = action{block: "broadcast", phase: phaseAction, decode: decodeBroadcast}

var broadcastSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "to"}, {Name: "event"}, {Name: "args"}, {Name: "except_sender"}, {Name: "require_member"},
	},
}

type broadcastStep struct {
	to            hcl.Expression // RUNTIME room name(s); nil = the whole namespace
	event         string         // default: the received event name
	args          Args           // default: passthrough
	exceptSender  bool
	requireMember bool // default true
}

func decodeBroadcast(d *decoder, ev *eventBody) []Step {
	var steps []Step
	for _, b := range ev.blocks("broadcast") {
		c := d.content(b.Body, broadcastSchema)
		a := c.Attributes
		s := &broadcastStep{event: ev.name, args: Args{Passthrough: true}, requireMember: true}
		if attr := a["to"]; attr != nil {
			s.to = d.runtime(attr.Expr, attr.Range, ev.where, EventVariables, checkRooms)
		}
		if attr := a["event"]; attr != nil && d.str(attr, &s.event) {
			d.eventName(s.event, attr.Expr.Range(), attr.Range)
		}
		if attr := a["args"]; attr != nil {
			s.args = d.args(attr, ev.where, EventVariables)
		}
		d.boolean(a["except_sender"], &s.exceptSender)
		d.boolean(a["require_member"], &s.requireMember)
		steps = append(steps, s)
	}
	return steps
}

func (s *broadcastStep) Run(x *Exec) error {
	var t Target
	if s.to != nil {
		rooms, err := x.Rooms(s.to)
		if err != nil {
			return err
		}
		if s.requireMember && !memberOfAll(x.Socket.Rooms(), rooms) {
			x.Stats.RoomDenied.Add(1)
			x.NotMember = true
			return nil
		}
		t.Rooms = rooms
	}
	if s.exceptSender {
		t.Except = []string{x.Socket.ID()}
	}
	return x.Broadcast(t, s.event, s.args)
}

func memberOfAll(have, rooms []string) bool {
	for _, r := range rooms {
		found := false
		for _, h := range have {
			if h == r {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
