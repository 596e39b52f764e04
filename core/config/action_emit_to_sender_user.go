package config

import (
	"github.com/hashicorp/hcl/v2"
)

// emit_to_sender_user { event, args, except_sender } (any number): emit to
// every socket of the sender's user, i.e. to room "user:<id>" where <id> is
// the user id the auth plugin established, on every instance (like
// broadcast). The core does not put sockets in that room: the auth
// plugin's rooms (e.g. auth-jwt's rooms_claim) or a join rule must. The
// sender gets the event too when it is in the room, unless except_sender is
// true. A socket without a user id (no auth plugin) sends nothing.

var emitToSenderUserAction = action{block: "emit_to_sender_user", phase: phaseAction, decode: decodeEmitToSenderUser}

var emitToSenderUserSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "event"}, {Name: "args"}, {Name: "except_sender"}},
}

// userRoomPrefix names the room of a user's sockets: "user:<id>".
const userRoomPrefix = "user:"

type emitToSenderUserStep struct {
	event        string // default: the received event name
	args         Args   // default: passthrough
	exceptSender bool
}

func decodeEmitToSenderUser(d *decoder, ev *eventBody) []Step {
	var steps []Step
	for _, b := range ev.blocks("emit_to_sender_user") {
		c := d.content(b.Body, emitToSenderUserSchema)
		s := &emitToSenderUserStep{event: ev.name, args: Args{Passthrough: true}}
		if attr := c.Attributes["event"]; attr != nil && d.str(attr, &s.event) {
			d.eventName(s.event, attr.Expr.Range(), attr.Range)
		}
		if attr := c.Attributes["args"]; attr != nil {
			s.args = d.args(attr, ev.where, EventVariables)
		}
		d.boolean(c.Attributes["except_sender"], &s.exceptSender)
		steps = append(steps, s)
	}
	return steps
}

func (s *emitToSenderUserStep) Run(x *Exec) error {
	user := x.Socket.User()
	if user == "" {
		return nil
	}
	t := Target{Rooms: []string{userRoomPrefix + user}}
	if s.exceptSender {
		t.Except = []string{x.Socket.ID()}
	}
	return x.Broadcast(t, s.event, s.args)
}
