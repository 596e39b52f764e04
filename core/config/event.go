package config

import (
	"fmt"
	"math"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

var serverEmitSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "event"}, {Name: "args"}},
}

var eventSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "max_size"}, {Name: "rate_limit"}, {Name: "rate_burst"}, {Name: "ack"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "join"}, {Type: "leave"}, {Type: "broadcast"}, {Type: "server_emit"}, {Type: "reply"},
	},
}

var roomSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "room", Required: true}, {Name: "allow"}},
}

var broadcastSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "to"}, {Name: "event"}, {Name: "args"}, {Name: "except_sender"}, {Name: "require_member"},
	},
}

var replySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "event", Required: true}, {Name: "args"}},
}

func (d *decoder) event(b *hcl.Block) *EventRule {
	r := &EventRule{Name: b.Labels[0], DeclRange: b.DefRange}
	d.eventName(r.Name, b.LabelRanges[0], b.DefRange)
	c := d.content(b.Body, eventSchema)
	a := c.Attributes
	where := fmt.Sprintf("event %q", r.Name)

	d.size(a["max_size"], &r.MaxSize)
	if attr := a["rate_limit"]; attr != nil {
		var s string
		if d.str(attr, &s) {
			rate, err := ParseRate(s)
			if err != nil {
				d.attrError(attr, "Invalid rate limit", "%s", err)
			} else {
				r.RateLimit = rate
				r.RateBurst = max(1, int(math.Ceil(rate-1e-9)))
			}
		}
	}
	if attr := a["rate_burst"]; attr != nil {
		if a["rate_limit"] == nil {
			d.attrError(attr, "Invalid attribute", "rate_burst needs a rate_limit in the same event block.")
		} else {
			d.integer(attr, &r.RateBurst, 1)
		}
	}

	for _, typ := range []string{"join", "leave"} {
		rb := d.single(c.Blocks, typ, "an event block")
		if rb == nil {
			continue
		}
		ra := d.roomAction(rb, where)
		if typ == "join" {
			r.Join = ra
		} else {
			r.Leave = ra
		}
	}
	for _, bb := range c.Blocks {
		switch bb.Type {
		case "broadcast":
			r.Broadcasts = append(r.Broadcasts, d.broadcast(bb, r.Name, where))
		case "server_emit":
			sc := d.content(bb.Body, serverEmitSchema)
			em := &Emit{Event: r.Name, Args: Args{Passthrough: true}}
			if attr := sc.Attributes["event"]; attr != nil && d.str(attr, &em.Event) {
				d.eventName(em.Event, attr.Expr.Range(), attr.Range)
			}
			if attr := sc.Attributes["args"]; attr != nil {
				em.Args = d.args(attr, where, EventVariables)
			}
			r.ServerEmits = append(r.ServerEmits, em)
		}
	}
	if rb := d.single(c.Blocks, "reply", "an event block"); rb != nil {
		rc := d.content(rb.Body, replySchema)
		em := &Emit{Args: Args{Passthrough: true}}
		if attr := rc.Attributes["event"]; attr != nil && d.str(attr, &em.Event) {
			d.eventName(em.Event, attr.Expr.Range(), attr.Range)
		}
		if attr := rc.Attributes["args"]; attr != nil {
			em.Args = d.args(attr, where, EventVariables)
		}
		r.Reply = em
	}
	if attr := a["ack"]; attr != nil {
		args := d.args(attr, where, EventVariables)
		r.Ack = &args
	}
	return r
}

func (d *decoder) roomAction(b *hcl.Block, where string) *RoomAction {
	c := d.content(b.Body, roomSchema)
	ra := &RoomAction{}
	if attr := c.Attributes["room"]; attr != nil {
		ra.Room = d.runtime(attr.Expr, attr.Range, where, EventVariables, checkRooms)
	}
	if attr := c.Attributes["allow"]; attr != nil {
		elems, diags := hcl.ExprList(attr.Expr)
		if diags.HasErrors() {
			d.attrError(attr, "Invalid allow list", "allow must be a list written with brackets, e.g. [\"lobby\", \"room:*\", \"user:${auth.user}\"].")
		}
		for _, e := range elems {
			ra.Allow = append(ra.Allow, d.runtime(e, attr.Range, where, EventVariables, checkString))
		}
	}
	return ra
}

func (d *decoder) broadcast(b *hcl.Block, eventName, where string) *Broadcast {
	c := d.content(b.Body, broadcastSchema)
	a := c.Attributes
	bc := &Broadcast{Event: eventName, Args: Args{Passthrough: true}, RequireMember: true}
	if attr := a["to"]; attr != nil {
		bc.To = d.runtime(attr.Expr, attr.Range, where, EventVariables, checkRooms)
	}
	if attr := a["event"]; attr != nil && d.str(attr, &bc.Event) {
		d.eventName(bc.Event, attr.Expr.Range(), attr.Range)
	}
	if attr := a["args"]; attr != nil {
		bc.Args = d.args(attr, where, EventVariables)
	}
	d.boolean(a["except_sender"], &bc.ExceptSender)
	d.boolean(a["require_member"], &bc.RequireMember)
	return bc
}

// args decodes an args/ack attribute: the bare traversal `args` is passthrough.
func (d *decoder) args(attr *hcl.Attribute, where string, allowed []string) Args {
	if st, ok := attr.Expr.(*hclsyntax.ScopeTraversalExpr); ok && len(st.Traversal) == 1 &&
		st.Traversal.RootName() == VarArgs && contains(allowed, VarArgs) {
		return Args{Passthrough: true}
	}
	return Args{Expr: d.runtime(attr.Expr, attr.Range, where, allowed, checkArgs)}
}
