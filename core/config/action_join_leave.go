package config

import "github.com/hashicorp/hcl/v2"

// join { room = ..., allow = [...] } and leave { ... } (each at most once):
// the sender joins or leaves the room(s), if every room matches an allow
// pattern; otherwise the rule stops with "room not allowed". Another
// connected socket's id is a room only its socket receives: a join refuses
// it whatever the patterns ("room is another socket's id") unless the join
// block says allow_socket_ids = true.

var (
	joinAction  = action{block: "join", phase: phaseAction, decode: decodeJoin}
	leaveAction = action{block: "leave", phase: phaseAction, decode: decodeLeave}
)

var roomSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "room", Required: true}, {Name: "allow"}, {Name: "allow_socket_ids"}},
}

type roomStep struct {
	join bool
	// socketIDs: other sockets' id rooms may be joined (allow_socket_ids).
	socketIDs bool
	room      hcl.Expression   // RUNTIME: a room name or a list of them
	allow     []hcl.Expression // RUNTIME templates, matched as globs ('*' any run, '?' one char); empty = any room
}

func decodeJoin(d *decoder, ev *eventBody) []Step  { return d.roomStep(ev, "join") }
func decodeLeave(d *decoder, ev *eventBody) []Step { return d.roomStep(ev, "leave") }

func (d *decoder) roomStep(ev *eventBody, typ string) []Step {
	b := d.single(ev.blocks(typ), typ, "an event block")
	if b == nil {
		return nil
	}
	c := d.content(b.Body, roomSchema)
	s := &roomStep{join: typ == "join"}
	if attr := c.Attributes["room"]; attr != nil {
		s.room = d.runtime(attr.Expr, attr.Range, ev.where, EventVariables, checkRooms)
	}
	if attr := c.Attributes["allow_socket_ids"]; attr != nil {
		d.boolean(attr, &s.socketIDs)
		if !s.join {
			d.attrError(attr, "Unsupported argument", "allow_socket_ids is for join blocks: leaving a room needs no permission.")
		}
	}
	if attr := c.Attributes["allow"]; attr != nil {
		elems, diags := hcl.ExprList(attr.Expr)
		if diags.HasErrors() {
			d.attrError(attr, "Invalid allow list", "allow must be a list written with brackets, e.g. [\"lobby\", \"room:*\", \"user:${auth.user}\"].")
		}
		for _, e := range elems {
			s.allow = append(s.allow, d.runtime(e, attr.Range, ev.where, EventVariables, checkString))
		}
	}
	if s.room == nil {
		return nil // reported: room is required
	}
	return []Step{s}
}

var errRoomDenied = &Refused{Reason: "room not allowed"}

func (s *roomStep) Run(x *Exec) error {
	rooms, err := x.Rooms(s.room)
	if err != nil {
		return err
	}
	for _, room := range rooms {
		if ok, _ := s.allowed(x.ctx(), room); !ok {
			x.Stats.RoomDenied.Add(1)
			return errRoomDenied
		}
	}
	if s.join {
		if s.socketIDs {
			err = x.Socket.JoinSocketRooms(rooms...)
		} else {
			err = x.Socket.Join(rooms...)
		}
		if err != nil {
			x.Stats.RoomDenied.Add(1)
			return &Refused{Reason: err.Error()}
		}
	} else {
		x.Socket.Leave(rooms...)
	}
	return nil
}

// allowed reports whether room matches one of the allow patterns (true when
// there are none). A pattern whose evaluation fails (e.g. it uses auth.user
// and the socket has no such field) does not match; its diagnostics are
// returned for logging.
func (s *roomStep) allowed(ctx *hcl.EvalContext, room string) (bool, hcl.Diagnostics) {
	if len(s.allow) == 0 {
		return true, nil
	}
	var diags hcl.Diagnostics
	for _, p := range s.allow {
		pat, d := EvalString(p, ctx)
		if d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		if MatchGlob(pat, room) {
			return true, diags
		}
	}
	return false, diags
}
