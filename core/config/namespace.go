package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// ReservedEvents are Socket.IO's reserved event names; they cannot be used as
// event rules or emitted.
var ReservedEvents = []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}

var namespaceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "unknown_events"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "on_connect"},
		{Type: "event", LabelNames: []string{"name"}},
		{Type: "server_event", LabelNames: []string{"name"}},
	},
}

var serverEventSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "ack"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "broadcast"}},
}

var serverBroadcastSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "to"}, {Name: "event"}, {Name: "args"}},
}

var onConnectSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "emit", LabelNames: []string{"event"}}},
}

var emitSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "args"}},
}

func (d *decoder) namespace(b *hcl.Block) *Namespace {
	name := b.Labels[0]
	ns := &Namespace{Name: name, UnknownEvents: "drop", Events: map[string]*EventRule{},
		ServerEvents: map[string]*ServerEvent{}, DeclRange: b.DefRange}
	if !strings.HasPrefix(name, "/") || strings.ContainsAny(name, ", \t\r\n?#") {
		d.errorf(b.LabelRanges[0].Ptr(), b.DefRange.Ptr(), "Invalid namespace name",
			"Namespace names start with \"/\" and contain no commas, spaces, '?' or '#', e.g. \"/\" or \"/chat\"; got %q.", name)
	}
	c := d.content(b.Body, namespaceSchema)
	if attr := c.Attributes["unknown_events"]; attr != nil && d.str(attr, &ns.UnknownEvents) {
		d.oneOf(attr, ns.UnknownEvents, "drop", "disconnect")
	}
	if oc := d.single(c.Blocks, "on_connect", "a namespace block"); oc != nil {
		occ := d.content(oc.Body, onConnectSchema)
		for _, eb := range occ.Blocks {
			ev := eb.Labels[0]
			d.eventName(ev, eb.LabelRanges[0], eb.DefRange)
			ec := d.content(eb.Body, emitSchema)
			em := &Emit{Event: ev, Args: Args{Expr: hcl.StaticExpr(cty.EmptyTupleVal, eb.Body.MissingItemRange())}}
			if attr := ec.Attributes["args"]; attr != nil {
				em.Args = d.args(attr, "on_connect", ConnectVariables)
			}
			ns.OnConnect = append(ns.OnConnect, em)
		}
	}
	for _, eb := range c.Blocks {
		if eb.Type != "event" {
			continue
		}
		rule := d.event(eb, len(ns.Events))
		if prev := ns.Events[rule.Name]; prev != nil {
			d.errorf(eb.LabelRanges[0].Ptr(), eb.DefRange.Ptr(), "Duplicate event rule",
				"Event %q is already declared in namespace %q at %s.", rule.Name, name, rangeStart(prev.DeclRange))
			continue
		}
		ns.Events[rule.Name] = rule
	}
	for _, sb := range c.Blocks {
		if sb.Type != "server_event" {
			continue
		}
		se := d.serverEvent(sb)
		if prev := ns.ServerEvents[se.Name]; prev != nil {
			d.errorf(sb.LabelRanges[0].Ptr(), sb.DefRange.Ptr(), "Duplicate server_event block",
				"Server event %q is already declared in namespace %q at %s.", se.Name, name, rangeStart(prev.DeclRange))
			continue
		}
		ns.ServerEvents[se.Name] = se
	}
	return ns
}

// serverEvent decodes a server_event block: local broadcasts and an ack,
// over `args` only.
func (d *decoder) serverEvent(b *hcl.Block) *ServerEvent {
	se := &ServerEvent{Name: b.Labels[0], DeclRange: b.DefRange}
	d.eventName(se.Name, b.LabelRanges[0], b.DefRange)
	where := fmt.Sprintf("server_event %q", se.Name)
	c := d.content(b.Body, serverEventSchema)
	for _, bb := range c.Blocks {
		bc := d.content(bb.Body, serverBroadcastSchema)
		a := bc.Attributes
		br := &ServerBroadcast{Event: se.Name, Args: Args{Passthrough: true}}
		if attr := a["to"]; attr != nil {
			br.To = d.runtime(attr.Expr, attr.Range, where, ServerEventVariables, checkRooms)
		}
		if attr := a["event"]; attr != nil && d.str(attr, &br.Event) {
			d.eventName(br.Event, attr.Expr.Range(), attr.Range)
		}
		if attr := a["args"]; attr != nil {
			br.Args = d.args(attr, where, ServerEventVariables)
		}
		se.Broadcasts = append(se.Broadcasts, br)
	}
	if attr := c.Attributes["ack"]; attr != nil {
		se.Ack = d.runtime(attr.Expr, attr.Range, where, ServerEventVariables, checkValue)
	}
	return se
}

func (d *decoder) eventName(name string, subject, context hcl.Range) {
	switch {
	case name == "":
		d.errorf(subject.Ptr(), context.Ptr(), "Invalid event name", "Event names must not be empty.")
	case contains(ReservedEvents, name):
		d.errorf(subject.Ptr(), context.Ptr(), "Reserved event name",
			"%q is reserved by Socket.IO; the reserved names are %s.", name, quoteList(ReservedEvents))
	}
}
