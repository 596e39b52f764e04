package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// EventRule is an `event "name" { ... }` block, decoded into steps by the
// actions of the registry (action.go).
type EventRule struct {
	Name   string
	Index  int    // position among its namespace's rules, in file order
	Limits []Step // phaseLimit steps, in registry order
	Steps  []Step // phaseAction steps, in registry order, then file order
	// Answer answers the client's acknowledgement; nil = {"ok":true}, or
	// a refusal when a broadcast was skipped.
	Answer     Step
	ReadsArgs  bool // some expression reads `args`
	ReadsScope bool // some expression reads auth, query, headers, socket, user or data
	DeclRange  hcl.Range
}

// eventBody is an event block as its actions see it.
type eventBody struct {
	name    string // the event name
	where   string // `event "name"`, for messages
	content *hcl.BodyContent
}

// attr returns the event block's attribute of that name, or nil.
func (ev *eventBody) attr(name string) *hcl.Attribute { return ev.content.Attributes[name] }

// blocks returns the event block's blocks of a type, in file order.
func (ev *eventBody) blocks(typ string) hcl.Blocks {
	var out hcl.Blocks
	for _, b := range ev.content.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

// eventSchema is the union of what the registered actions read.
var eventSchema = func() *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, a := range actions {
		for _, name := range a.attrs {
			s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: name})
		}
		if a.block != "" {
			s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: a.block})
		}
	}
	return s
}()

// event decodes the envelope of an event block and hands it to every
// registered action.
func (d *decoder) event(b *hcl.Block, index int) *EventRule {
	r := &EventRule{Name: b.Labels[0], Index: index, DeclRange: b.DefRange}
	d.eventName(r.Name, b.LabelRanges[0], b.DefRange)
	ev := &eventBody{name: r.Name, where: fmt.Sprintf("event %q", r.Name), content: d.content(b.Body, eventSchema)}
	d.rule = r // runtime() records which variables the rule reads
	defer func() { d.rule = nil }()
	for _, a := range actions {
		steps := a.decode(d, ev)
		switch a.phase {
		case phaseLimit:
			r.Limits = append(r.Limits, steps...)
		case phaseAction:
			r.Steps = append(r.Steps, steps...)
		case phaseAnswer:
			if len(steps) > 0 {
				r.Answer = steps[len(steps)-1]
			}
		}
	}
	return r
}

// args decodes an args/ack attribute: the bare traversal `args` is passthrough.
func (d *decoder) args(attr *hcl.Attribute, where string, allowed []string) Args {
	if st, ok := attr.Expr.(*hclsyntax.ScopeTraversalExpr); ok && len(st.Traversal) == 1 &&
		st.Traversal.RootName() == VarArgs && contains(allowed, VarArgs) {
		return Args{Passthrough: true}
	}
	return Args{Expr: d.runtime(attr.Expr, attr.Range, where, allowed, checkArgs)}
}
