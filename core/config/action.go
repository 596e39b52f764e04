package config

import (
	"math/big"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/socketfleet/socketfleet/core/protocol/siowire"
)

// Event-rule actions. Every block or attribute an `event` block may hold is
// an action; its file, action_<name>.go, holds its schema, its decoding and
// load-time checks, and its run step. The table below registers it; the
// event block's schema is built from the table, and core/routing runs a
// rule's steps in table order.

// phase says when an action's steps run.
type phase uint8

const (
	// phaseLimit steps run first, before the event's arguments are
	// converted for expressions, so refused events cost little.
	phaseLimit phase = iota
	// phaseAction steps do the rule's work.
	phaseAction
	// phaseAnswer steps answer the client's acknowledgement once the event
	// is counted as handled; they run only when the client asked for one.
	phaseAnswer
)

// action is one entry of the registry.
type action struct {
	block  string   // the block type it is written as; "" for attribute actions
	attrs  []string // attributes of the event block it reads
	phase  phase
	decode func(d *decoder, ev *eventBody) []Step // nil or no steps: nothing to run
}

// actions is the registry; within a phase, steps run in this order.
var actions = []action{
	maxSizeAction,
	rateLimitAction,
	joinAction,
	leaveAction,
	broadcastAction,
	serverEmitAction,
	emitToSenderUserAction,
	replyAction,
	ackAction,
}

// Step is one decoded action of an event rule, run per event. A step
// returns nil to go on, a *Refused to stop the rule with a reason, or any
// other error when an expression failed on this event's data.
type Step interface {
	Run(x *Exec) error
}

// Refused stops a rule; the client's ack, when it asked for one, is
// {"ok":false,"error":Reason}. Steps return shared values, not wrapped.
type Refused struct{ Reason string }

func (r *Refused) Error() string { return r.Reason }

// Event is the client event a rule runs on.
type Event struct {
	Name        string
	Args        [][]byte // raw JSON arguments, placeholders included
	Data        []byte   // the JSON array ["name", args...] as received
	Attachments [][]byte
	WantsAck    bool
	Size        int // on the wire: JSON plus attachments
}

// Target selects a broadcast's recipients: sockets in any of Rooms (none =
// the whole namespace) except those in any of Except.
type Target struct {
	Rooms  []string
	Except []string
}

// Socket is what steps do to the sender and its namespace. core/routing
// implements it over socketio; its tests use a recording double.
type Socket interface {
	ID() string
	User() string // the auth plugin's user id, "" without auth
	Auth() []byte // the CONNECT payload as received, for arguments passed through raw
	Rooms() []string
	// Join joins all rooms or none: an error (the room index's limits)
	// refuses the join.
	Join(rooms ...string) error
	// JoinSocketRooms is Join that may also join other sockets' id rooms
	// (a join block with allow_socket_ids = true).
	JoinSocketRooms(rooms ...string) error
	Leave(rooms ...string)
	// Emit sends an event to this socket only.
	Emit(event string, args, attachments [][]byte)
	// Ack answers this event's acknowledgement.
	Ack(args, attachments [][]byte)
	// Broadcast sends an event array to the target's sockets on every
	// instance (through the cluster adapter, if any).
	Broadcast(t Target, data []byte, attachments [][]byte)
	// ServerSideEmit sends an event array to every instance's server_event
	// rules, without waiting.
	ServerSideEmit(data []byte, attachments [][]byte)
}

// RuleStats are the counters steps keep; core/routing's Stats embeds them.
type RuleStats struct {
	TooLarge    atomic.Int64 // over a rule's max_size
	RateLimited atomic.Int64
	RoomDenied  atomic.Int64 // join/leave/broadcast to a room the rule does not allow
	ServerEmits atomic.Int64 // server-side emits sent by server_emit actions
}

// SocketState is what steps keep per socket between events; the router
// holds one per socket.
type SocketState struct {
	buckets []bucket // rate_limit, by rule index; made on first use
}

// Exec is one event running through its rule's steps. Events of one socket
// run one at a time.
type Exec struct {
	Event
	Socket Socket
	Rule   *EventRule
	// Ctx holds the event's variables; nil when no expression of the rule
	// reads any (its expressions are then constants).
	Ctx   *hcl.EvalContext
	State *SocketState
	Stats *RuleStats
	Now   func() time.Time
	// NotMember is set by a broadcast skipped because the sender is not in
	// its room(s); the default ack then refuses.
	NotMember bool
}

// staticCtx evaluates constant expressions: functions, no variables.
var staticCtx = NewEvalContext(nil)

func (x *Exec) ctx() *hcl.EvalContext {
	if x.Ctx != nil {
		return x.Ctx
	}
	return staticCtx
}

// Rooms evaluates a room expression for this event.
func (x *Exec) Rooms(expr hcl.Expression) ([]string, error) {
	rooms, diags := EvalStrings(expr, x.ctx())
	if diags.HasErrors() {
		return nil, diags
	}
	return rooms, nil
}

// EvalArgs evaluates non-passthrough Args for this event.
func (x *Exec) EvalArgs(a Args) ([][]byte, error) {
	return ArgsJSON(a, x.ctx(), x.Socket.Auth(), x.Args)
}

// Broadcast sends event to t with args: the bytes received when the event
// goes on unchanged under its own name (binary attachments included), the
// received arguments under another name, or the evaluated args.
func (x *Exec) Broadcast(t Target, event string, args Args) error {
	switch {
	case args.Passthrough && event == x.Name:
		x.Socket.Broadcast(t, x.Data, x.Attachments) // the bytes received, not re-encoded
	case args.Passthrough:
		x.Socket.Broadcast(t, siowire.AppendEvent(nil, event, x.Args), x.Attachments)
	default:
		vals, err := x.EvalArgs(args)
		if err != nil {
			return err
		}
		x.Socket.Broadcast(t, siowire.AppendEvent(nil, event, vals), nil)
	}
	return nil
}

// ArgsJSON evaluates non-passthrough Args to raw JSON values. A bare `auth`
// or `args[N]` element is sent as the bytes received (key order and number
// formatting kept) instead of a round trip through HCL values. ctx nil =
// constants only.
func ArgsJSON(a Args, ctx *hcl.EvalContext, auth []byte, eventArgs [][]byte) ([][]byte, error) {
	if a.Expr == nil {
		return nil, nil
	}
	if ctx == nil {
		ctx = staticCtx
	}
	if tup, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok {
		out := make([][]byte, 0, len(tup.Exprs))
		for _, el := range tup.Exprs {
			root, i, raw := RawArg(el)
			switch {
			case raw && root == VarAuth:
				out = append(out, auth)
				continue
			case raw && root == VarArgs && i < len(eventArgs):
				out = append(out, eventArgs[i])
				continue
			}
			v, diags := el.Value(ctx)
			if diags.HasErrors() {
				return nil, diags
			}
			b, err := ValueToJSON(v)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
		return out, nil
	}
	vals, diags := a.Eval(ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		b, err := ValueToJSON(v)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// RawArg reports whether an expression is a bare `auth` or `args[N]`,
// which are sent as the bytes received.
func RawArg(e hcl.Expression) (root string, index int, ok bool) {
	st, isTrav := e.(*hclsyntax.ScopeTraversalExpr)
	if !isTrav {
		return "", 0, false
	}
	tr := st.Traversal
	switch {
	case len(tr) == 1 && tr.RootName() == VarAuth:
		return VarAuth, 0, true
	case len(tr) == 2 && tr.RootName() == VarArgs:
		ix, isIndex := tr[1].(hcl.TraverseIndex)
		if !isIndex || ix.Key.Type() != cty.Number {
			return "", 0, false
		}
		bf := ix.Key.AsBigFloat()
		if n, acc := bf.Int64(); acc == big.Exact && n >= 0 && n < 1<<16 {
			return VarArgs, int(n), true
		}
	}
	return "", 0, false
}
