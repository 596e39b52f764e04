// Package routing runs the event rules declared in config.hcl: for each
// namespace a Router implements socketio.Handler, so what a client event does
// is data, not Go code. The actions themselves (join, leave, broadcast,
// reply, ack, limits, ...) live in core/config/action_*.go; the Router
// authenticates, builds each event's variables and runs a rule's steps.
package routing

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/sirupsen/logrus"
	"github.com/zclconf/go-cty/cty"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/protocol/siowire"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/core/socketio"
	"github.com/socketfleet/socketfleet/sdk"
)

// Stats counts what the rules refused or could not do.
type Stats struct {
	config.RuleStats // what the actions count: TooLarge, RateLimited, RoomDenied, ServerEmits

	Events        atomic.Int64 // events a rule handled
	Unknown       atomic.Int64 // events no rule names (dropped or disconnected)
	RuleErrors    atomic.Int64 // an expression failed on this event's data
	ServerEvents  atomic.Int64 // server-side emits a server_event block handled
	ServerErrors  atomic.Int64 // server_event expressions that failed on an emit's data
	Disconnected  atomic.Int64 // sockets disconnected for unknown events
	ConnectEmits  atomic.Int64
	ConnectErrors atomic.Int64 // on_connect emits whose args failed to evaluate
	AuthAccepted  atomic.Int64
	AuthRefused   atomic.Int64 // the auth plugin said no
	AuthFailed    atomic.Int64 // the auth plugin could not answer: refused, fail closed
	WrongShard    atomic.Int64 // users sent to their shard
	ShardFailed   atomic.Int64 // the sharding plugin could not answer: refused

	ruleErrs ruleErrors // RuleErrors by rule, and the pace of their warn lines
}

// Router is the socketio.Handler of one namespace.
type Router struct {
	ns     *config.Namespace
	auth   sdk.Authenticator // nil = no authentication
	shard  sdk.Sharder       // nil = no sharding
	redact []string          // auth fields every socket drops
	// skipRecovered: recovered sockets skip auth and sharding.
	skipRecovered bool
	log           *logrus.Entry
	stats         *Stats
	now           func() time.Time
	// connectScope[i]: on_connect emit i reads the socket's variables.
	connectScope []bool
}

// socketState is the router's per-socket data, created on first use.
type socketState struct {
	base  *hcl.EvalContext // auth, query, headers, socket, user, data
	steps config.SocketState
}

// Plugins are the plugins a router consults per CONNECT; each may be nil.
type Plugins struct {
	Auth     sdk.Authenticator
	Sharding sdk.Sharder
	// RedactAuth names CONNECT payload fields no socket keeps (config's
	// api.redact_auth), besides those the auth plugin's decision names.
	RedactAuth []string
	// SkipAuthOnRecovery: a socket that recovered its session (connection
	// state recovery) keeps the identity it had and is not sent to the
	// auth and sharding plugins again (Node's skipMiddlewares).
	SkipAuthOnRecovery bool
}

// New returns the router for a namespace's rules.
func New(ns *config.Namespace, p Plugins, stats *Stats, log *logrus.Entry) *Router {
	r := &Router{ns: ns, auth: p.Auth, shard: p.Sharding, redact: p.RedactAuth, log: log, stats: stats, now: time.Now,
		skipRecovered: p.SkipAuthOnRecovery}
	for _, em := range ns.OnConnect {
		r.connectScope = append(r.connectScope, em.Args.Expr != nil && len(em.Args.Expr.Variables()) > 0)
	}
	return r
}

var _ socketio.Handler = (*Router)(nil)

// Connect asks the auth plugin, once per CONNECT. A plugin that cannot
// answer (down, timed out, failing) refuses the socket: auth fails closed.
//
// Secrets are dropped from the CONNECT payload once the plugin has seen
// them: what the socket keeps (for rules, the API, fetchSockets) lacks the
// fields the decision and api.redact_auth name.
func (r *Router) Connect(s *socketio.Socket) error {
	if r.auth == nil || (r.skipRecovered && s.Recovered()) {
		s.RedactAuth(r.redact)
		return nil
	}
	hs := s.Handshake()
	req := &sdk.AuthRequest{
		Namespace:  s.Namespace().Name(),
		Auth:       s.Auth(),
		Headers:    firstValues(hs.Header(), true),
		Query:      firstValues(hs.Query(), false),
		RemoteAddr: hs.Address,
	}
	dec, err := r.auth.Authenticate(context.Background(), req)
	if err != nil {
		r.stats.AuthFailed.Add(1)
		r.log.WithError(err).WithField("socket", s.ID()).Warn("auth refused: authentication unavailable")
		return &socketio.ConnectError{Message: "authentication unavailable", Data: []byte(`{"reason":"auth_unavailable"}`)}
	}
	if !dec.Allow {
		r.stats.AuthRefused.Add(1)
		msg := dec.Message
		if msg == "" {
			msg = "not authorized"
		}
		r.log.WithFields(logrus.Fields{"socket": s.ID(), "reason": msg, "remote_addr": hs.Address}).Info("auth refused")
		return &socketio.ConnectError{Message: msg, Data: dec.ErrorData}
	}
	r.stats.AuthAccepted.Add(1)
	s.RedactAuth(r.redact)
	s.RedactAuth(dec.RedactAuth)
	s.SetIdentity(dec.UserID, dec.Data)
	s.JoinOnConnect(dec.Rooms...)
	if r.shard != nil && dec.UserID != "" {
		return r.checkShard(s, dec.UserID)
	}
	return nil
}

// checkShard sends a user who belongs to another shard there.
func (r *Router) checkShard(s *socketio.Socket, user string) error {
	as, err := r.shard.Assign(context.Background(), user)
	if err != nil {
		r.stats.ShardFailed.Add(1)
		r.log.WithError(err).WithField("socket", s.ID()).Warn("sharding unavailable: connection refused")
		return &socketio.ConnectError{Message: "sharding unavailable", Data: []byte(`{"reason":"sharding_unavailable"}`)}
	}
	if as.Local {
		return nil
	}
	r.stats.WrongShard.Add(1)
	data := []byte(`{"shard":` + strconv.Itoa(as.Shard))
	if as.URL != "" {
		data = siowire.AppendString(append(data, `,"url":`...), as.URL)
	}
	return &socketio.ConnectError{Message: "Please connect to shard " + strconv.Itoa(as.Shard), Data: append(data, '}')}
}

func firstValues(m map[string][]string, lower bool) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if len(v) == 0 {
			continue
		}
		if lower {
			k = strings.ToLower(k)
		}
		out[k] = v[0]
	}
	return out
}

// Connected sends the on_connect emits.
func (r *Router) Connected(s *socketio.Socket) { r.connected(&sioSocket{s: s}) }

func (r *Router) connected(sk socket) {
	for i, em := range r.ns.OnConnect {
		var ctx *hcl.EvalContext
		var err error
		if r.connectScope[i] {
			ctx, err = r.baseContext(sk, stateOf(sk))
		}
		var args [][]byte
		if err == nil {
			args, err = config.ArgsJSON(em.Args, ctx, sk.Auth(), nil)
		}
		if err != nil {
			r.stats.ConnectErrors.Add(1)
			r.log.WithError(err).WithField("event", em.Event).Warn("on_connect emit skipped")
			continue
		}
		r.stats.ConnectEmits.Add(1)
		sk.Emit(em.Event, args, nil)
	}
}

// Disconnected needs no work: the adapter already dropped the rooms.
func (r *Router) Disconnected(*socketio.Socket, string) {}

// call is what one event needs besides its rule, pooled so that running a
// rule allocates nothing of its own and idle sockets hold none of it.
type call struct {
	x    config.Exec
	sock sioSocket
}

var calls = sync.Pool{New: func() any { return new(call) }}

// Event runs the rule named by the event, if any.
func (r *Router) Event(s *socketio.Socket, e *socketio.Event) {
	c := calls.Get().(*call)
	c.sock.s, c.sock.e = s, e
	c.x.Event = config.Event{Name: e.Name, Args: e.Args, Data: e.Data(),
		Attachments: e.Attachments, WantsAck: e.WantsAck(), Size: e.Size()}
	r.event(&c.sock, &c.x)
	calls.Put(c) // what it still points to is overwritten by the next event
}

// event runs the rule named by x.Event: the limits, then (when its
// expressions read any) the event's variables, the actions, and the
// answer to the ack. The rest of x is set here.
func (r *Router) event(sk socket, x *config.Exec) {
	ru := r.ns.Events[x.Name]
	if ru == nil {
		r.stats.Unknown.Add(1)
		if r.ns.UnknownEvents == "disconnect" {
			r.stats.Disconnected.Add(1)
			sk.Disconnect(false)
		}
		return
	}
	st := stateOf(sk)
	// Field by field: cheaper than a struct copy on the hot path.
	x.Socket, x.Rule, x.State, x.Stats, x.Now = sk, ru, &st.steps, &r.stats.RuleStats, r.now
	x.Ctx, x.NotMember = nil, false
	for _, step := range ru.Limits {
		if err := step.Run(x); err != nil {
			r.stop(x, err)
			return
		}
	}
	if ru.ReadsArgs || ru.ReadsScope {
		ctx, err := r.eventContext(sk, st, x.Args, ru.ReadsArgs)
		if err != nil {
			r.stop(x, err)
			return
		}
		x.Ctx = ctx
	}
	for _, step := range ru.Steps {
		if err := step.Run(x); err != nil {
			r.stop(x, err)
			return
		}
	}
	r.stats.Events.Add(1)
	switch {
	case !x.WantsAck:
	case ru.Answer != nil:
		if err := ru.Answer.Run(x); err != nil {
			r.stop(x, err)
		}
	case x.NotMember:
		r.refuse(x, "not a member of the room")
	default:
		sk.Ack(ackOK, nil)
	}
}

var ackOK = [][]byte{[]byte(`{"ok":true}`)} // read only

// stop ends a rule on a step's error: a refusal with its reason, else a
// failure on this event's data.
func (r *Router) stop(x *config.Exec, err error) {
	if ref, ok := err.(*config.Refused); ok {
		r.refuse(x, ref.Reason)
		return
	}
	r.stats.RuleErrors.Add(1)
	where := ruleWhere(err, x.Rule)
	if log, suppressed := r.stats.ruleErrs.note(ruleErrorKey{r.ns.Name, x.Name, where}, r.now()); log {
		// validate cannot see these: they depend on each event's data.
		r.log.WithFields(logrus.Fields{"event": x.Name, "rule": where, "socket": x.Socket.ID(),
			"suppressed": suppressed}).WithError(err).Warn("event rule failed on this event's data (at most one line per rule per 10s)")
	}
	r.refuse(x, "invalid event data")
}

// refuse answers an ack the client asked for with {"ok":false,"error":...}.
func (r *Router) refuse(x *config.Exec, reason string) {
	if x.WantsAck {
		b := siowire.AppendString([]byte(`{"ok":false,"error":`), reason)
		x.Socket.Ack([][]byte{append(b, '}')}, nil)
	}
}

func stateOf(sk socket) *socketState {
	if st, ok := sk.State().(*socketState); ok {
		return st
	}
	st := &socketState{}
	sk.SetState(st)
	return st
}

// baseContext builds (once per socket) the variables that do not change
// between events.
func (r *Router) baseContext(sk socket, st *socketState) (*hcl.EvalContext, error) {
	if st.base != nil {
		return st.base, nil
	}
	sc, err := sk.Scope()
	if err != nil {
		return nil, fmt.Errorf("socket variables: %w", err)
	}
	st.base = sc.EvalContext()
	return st.base, nil
}

func (r *Router) eventContext(sk socket, st *socketState, args [][]byte, withArgs bool) (*hcl.EvalContext, error) {
	base, err := r.baseContext(sk, st)
	if err != nil {
		return nil, err
	}
	if !withArgs {
		return base, nil
	}
	vals := make([]cty.Value, len(args))
	for i, a := range args {
		if vals[i], err = config.ValueFromJSON(a); err != nil {
			return nil, fmt.Errorf("argument %d: %w", i, err)
		}
	}
	ctx := base.NewChild()
	ctx.Variables = map[string]cty.Value{config.VarArgs: cty.TupleVal(vals)}
	return ctx, nil
}

var _ socketio.ServerEventHandler = (*Router)(nil)

// ServerEvent runs the server_event block named by a server-side emit: its
// broadcasts reach this instance's sockets only (every instance runs its
// own), and its ack answers when the sender wants one. An expression that
// fails skips its broadcast, or makes the ack null, and is counted.
func (r *Router) ServerEvent(ns *socketio.Namespace, name string, args, attachments [][]byte, ack func([]byte, [][]byte)) bool {
	se := r.ns.ServerEvents[name]
	if se == nil {
		return false
	}
	r.stats.ServerEvents.Add(1)
	var ctx *hcl.EvalContext
	var ctxErr error
	lazyCtx := func() (*hcl.EvalContext, error) { // built once, when an expression needs it
		if ctx == nil && ctxErr == nil {
			vals := make([]cty.Value, len(args))
			for i, a := range args {
				if vals[i], ctxErr = config.ValueFromJSON(a); ctxErr != nil {
					return nil, ctxErr
				}
			}
			ctx = config.NewEvalContext(map[string]cty.Value{config.VarArgs: cty.TupleVal(vals)})
		}
		return ctx, ctxErr
	}
	for _, b := range se.Broadcasts {
		if err := r.serverBroadcast(ns, b, args, attachments, lazyCtx); err != nil {
			r.serverFailed(name, err)
		}
	}
	if ack == nil {
		return true
	}
	if se.Ack == nil {
		ack([]byte("null"), nil)
		return true
	}
	if raw, ok := rawServerArg(se.Ack, args); ok {
		ack(raw, attachments)
		return true
	}
	out, err := evalServerValue(se.Ack, lazyCtx)
	if err != nil {
		r.serverFailed(name, err)
		out = []byte("null")
	}
	ack(out, nil)
	return true
}

func (r *Router) serverBroadcast(ns *socketio.Namespace, b *config.ServerBroadcast, args, attachments [][]byte,
	lazyCtx func() (*hcl.EvalContext, error)) error {
	var opts rooms.Options
	if b.To != nil {
		ctx, err := lazyCtx()
		if err != nil {
			return err
		}
		rooms, diags := config.EvalStrings(b.To, ctx)
		if diags.HasErrors() {
			return diags
		}
		opts.Rooms = rooms
	}
	if b.Args.Passthrough {
		ns.BroadcastLocal(opts, socketio.EventData(b.Event, args), attachments)
		return nil
	}
	tup, isTuple := b.Args.Expr.(*hclsyntax.TupleConsExpr)
	if !isTuple {
		ctx, err := lazyCtx()
		if err != nil {
			return err
		}
		vals, diags := b.Args.Eval(ctx)
		if diags.HasErrors() {
			return diags
		}
		out := make([][]byte, len(vals))
		for i, v := range vals {
			if out[i], err = config.ValueToJSON(v); err != nil {
				return err
			}
		}
		ns.BroadcastLocal(opts, socketio.EventData(b.Event, out), nil)
		return nil
	}
	out := make([][]byte, 0, len(tup.Exprs))
	for _, el := range tup.Exprs {
		if raw, ok := rawServerArg(el, args); ok {
			out = append(out, raw)
			continue
		}
		v, err := evalServerValue(el, lazyCtx)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	ns.BroadcastLocal(opts, socketio.EventData(b.Event, out), nil)
	return nil
}

// rawServerArg returns the received bytes for a bare args[N] (byte-exact,
// like event rules do).
func rawServerArg(e hcl.Expression, args [][]byte) ([]byte, bool) {
	if root, i, raw := config.RawArg(e); raw && root == config.VarArgs && i < len(args) {
		return args[i], true
	}
	return nil, false
}

func evalServerValue(e hcl.Expression, lazyCtx func() (*hcl.EvalContext, error)) ([]byte, error) {
	ctx, err := lazyCtx()
	if err != nil {
		return nil, err
	}
	v, diags := e.Value(ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	return config.ValueToJSON(v)
}

func (r *Router) serverFailed(name string, err error) {
	r.stats.ServerErrors.Add(1)
	r.log.WithField("server_event", name).WithError(err).Debug("server_event expression failed on this emit")
}
