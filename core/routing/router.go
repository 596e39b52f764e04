// Package routing runs the event rules declared in config.hcl: for each
// namespace a Router implements socketio.Handler, so what a client event does
// (join, leave, broadcast, reply, ack, limits) is data, not Go code.
package routing

import (
	"context"
	"math"
	"math/big"
	"strconv"
	"strings"
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
	Events        atomic.Int64 // events a rule handled
	Unknown       atomic.Int64 // events no rule names (dropped or disconnected)
	TooLarge      atomic.Int64 // over a rule's max_size
	RateLimited   atomic.Int64
	RoomDenied    atomic.Int64 // join/leave/broadcast to a room the rule does not allow
	RuleErrors    atomic.Int64 // an expression failed on this event's data
	ServerEmits   atomic.Int64 // server-side emits sent by server_emit actions
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
}

// Router is the socketio.Handler of one namespace.
type Router struct {
	ns    *config.Namespace
	auth  sdk.Authenticator // nil = no authentication
	shard sdk.Sharder       // nil = no sharding
	rules map[string]*rule
	log   *logrus.Entry
	stats *Stats
	now   func() time.Time
}

type rule struct {
	cfg       *config.EventRule
	index     int
	needsArgs bool // some expression of the rule reads `args`
	needsBase bool // some expression reads auth/query/headers/socket
}

// socketState is the router's per-socket data, created on first use.
type socketState struct {
	base    *hcl.EvalContext // auth, query, headers, socket, user, data
	buckets []bucket         // by rule index
}

type bucket struct {
	tokens float64
	last   time.Time
}

// Plugins are the plugins a router consults per CONNECT; each may be nil.
type Plugins struct {
	Auth     sdk.Authenticator
	Sharding sdk.Sharder
}

// New returns the router for a namespace's rules.
func New(ns *config.Namespace, p Plugins, stats *Stats, log *logrus.Entry) *Router {
	r := &Router{ns: ns, auth: p.Auth, shard: p.Sharding, rules: make(map[string]*rule, len(ns.Events)), log: log, stats: stats, now: time.Now}
	i := 0
	for name, ev := range ns.Events {
		ru := &rule{cfg: ev, index: i}
		i++
		for _, e := range ruleExprs(ev) {
			for _, t := range e.Variables() {
				if t.RootName() == config.VarArgs {
					ru.needsArgs = true
				} else {
					ru.needsBase = true
				}
			}
		}
		r.rules[name] = ru
	}
	return r
}

func ruleExprs(ev *config.EventRule) []hcl.Expression {
	var out []hcl.Expression
	add := func(e hcl.Expression) {
		if e != nil {
			out = append(out, e)
		}
	}
	for _, ra := range []*config.RoomAction{ev.Join, ev.Leave} {
		if ra != nil {
			add(ra.Room)
			for _, a := range ra.Allow {
				add(a)
			}
		}
	}
	for _, b := range ev.Broadcasts {
		add(b.To)
		add(b.Args.Expr)
	}
	for _, se := range ev.ServerEmits {
		add(se.Args.Expr)
	}
	if ev.Reply != nil {
		add(ev.Reply.Args.Expr)
	}
	if ev.Ack != nil {
		add(ev.Ack.Expr)
	}
	return out
}

var _ socketio.Handler = (*Router)(nil)

// Connect asks the auth plugin, once per CONNECT. A plugin that cannot
// answer (down, timed out, failing) refuses the socket: auth fails closed.
func (r *Router) Connect(s *socketio.Socket) error {
	if r.auth == nil {
		return nil
	}
	hs := s.Handshake()
	req := &sdk.AuthRequest{
		Namespace:  s.Namespace().Name(),
		Auth:       s.Auth(),
		Headers:    firstValues(hs.Headers, true),
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
func (r *Router) Connected(s *socketio.Socket) {
	for _, em := range r.ns.OnConnect {
		args, err := r.evalArgs(s, em.Args, nil, nil)
		if err != nil {
			r.stats.ConnectErrors.Add(1)
			r.log.WithError(err).WithField("event", em.Event).Warn("on_connect emit skipped")
			continue
		}
		r.stats.ConnectEmits.Add(1)
		s.Emit(em.Event, args, nil)
	}
}

// Disconnected needs no work: the adapter already dropped the rooms.
func (r *Router) Disconnected(*socketio.Socket, string) {}

// Event runs the rule named by the event, if any.
func (r *Router) Event(s *socketio.Socket, e *socketio.Event) {
	ru := r.rules[e.Name]
	if ru == nil {
		r.stats.Unknown.Add(1)
		if r.ns.UnknownEvents == "disconnect" {
			r.stats.Disconnected.Add(1)
			s.Disconnect(false)
		}
		return
	}
	ev := ru.cfg
	if ev.MaxSize > 0 && int64(e.Size()) > ev.MaxSize {
		r.stats.TooLarge.Add(1)
		r.refuse(s, e, "payload too large")
		return
	}
	st := state(s)
	if ev.RateLimit > 0 && !r.allow(st, ru) {
		r.stats.RateLimited.Add(1)
		r.refuse(s, e, "rate limited")
		return
	}

	var ctx *hcl.EvalContext
	if ru.needsArgs || ru.needsBase {
		var err error
		if ctx, err = r.eventContext(s, st, e, ru.needsArgs); err != nil {
			r.fail(s, e, err)
			return
		}
	}

	ok := true
	for _, step := range []struct {
		ra   *config.RoomAction
		join bool
	}{{ev.Join, true}, {ev.Leave, false}} {
		if step.ra == nil {
			continue
		}
		rooms, diags := config.EvalStrings(step.ra.Room, ctx)
		if diags.HasErrors() {
			r.fail(s, e, diags)
			return
		}
		if !r.roomsAllowed(step.ra, ctx, rooms) {
			r.stats.RoomDenied.Add(1)
			r.refuse(s, e, "room not allowed")
			return
		}
		if step.join {
			if err := s.Join(rooms...); err != nil { // the room index's limits
				r.stats.RoomDenied.Add(1)
				r.refuse(s, e, err.Error())
				return
			}
		} else {
			s.Leave(rooms...)
		}
	}

	for _, b := range ev.Broadcasts {
		var opts rooms.Options
		if b.To != nil {
			rooms, diags := config.EvalStrings(b.To, ctx)
			if diags.HasErrors() {
				r.fail(s, e, diags)
				return
			}
			if b.RequireMember && !memberOfAll(s, rooms) {
				r.stats.RoomDenied.Add(1)
				ok = false
				continue
			}
			opts.Rooms = rooms
		}
		if b.ExceptSender {
			opts.Except = []string{s.ID()}
		}
		name := b.Event
		if name == "" {
			name = e.Name
		}
		if b.Args.Passthrough {
			if name == e.Name {
				s.Namespace().BroadcastData(opts, e.Data(), e.Attachments)
			} else {
				s.Namespace().Broadcast(opts, name, e.Args, e.Attachments)
			}
			continue
		}
		args, err := r.evalArgs(s, b.Args, ctx, e.Args)
		if err != nil {
			r.fail(s, e, err)
			return
		}
		s.Namespace().Broadcast(opts, name, args, nil)
	}

	for _, se := range ev.ServerEmits {
		var data []byte
		var atts [][]byte
		switch {
		case se.Args.Passthrough && se.Event == e.Name:
			data, atts = e.Data(), e.Attachments
		case se.Args.Passthrough:
			data, atts = socketio.EventData(se.Event, e.Args), e.Attachments
		default:
			args, err := r.evalArgs(s, se.Args, ctx, e.Args)
			if err != nil {
				r.fail(s, e, err)
				return
			}
			data = socketio.EventData(se.Event, args)
		}
		r.stats.ServerEmits.Add(1)
		s.Namespace().ServerSideEmitAsync(data, atts)
	}

	if rp := ev.Reply; rp != nil {
		if rp.Args.Passthrough {
			s.Emit(rp.Event, e.Args, e.Attachments)
		} else {
			args, err := r.evalArgs(s, rp.Args, ctx, e.Args)
			if err != nil {
				r.fail(s, e, err)
				return
			}
			s.Emit(rp.Event, args, nil)
		}
	}

	r.stats.Events.Add(1)
	switch {
	case !e.WantsAck():
	case ev.Ack == nil:
		if ok {
			s.Ack(e, [][]byte{[]byte(`{"ok":true}`)}, nil)
		} else {
			r.refuse(s, e, "not a member of the room")
		}
	case ev.Ack.Passthrough:
		s.AckRaw(e, siowire.AppendArray(nil, e.Args...), e.Attachments)
	default:
		args, err := r.evalArgs(s, *ev.Ack, ctx, e.Args)
		if err != nil {
			r.fail(s, e, err)
			return
		}
		s.Ack(e, args, nil)
	}
}

// refuse answers an ack the client asked for with {"ok":false,"error":...}.
func (r *Router) refuse(s *socketio.Socket, e *socketio.Event, reason string) {
	if e.WantsAck() {
		b := siowire.AppendString([]byte(`{"ok":false,"error":`), reason)
		s.Ack(e, [][]byte{append(b, '}')}, nil)
	}
}

func (r *Router) fail(s *socketio.Socket, e *socketio.Event, err error) {
	r.stats.RuleErrors.Add(1)
	r.log.WithField("event", e.Name).WithField("socket", s.ID()).WithError(err).Debug("event rule failed on this event")
	r.refuse(s, e, "invalid event data")
}

func (r *Router) roomsAllowed(ra *config.RoomAction, ctx *hcl.EvalContext, rooms []string) bool {
	for _, room := range rooms {
		if ok, _ := ra.Allowed(ctx, room); !ok {
			return false
		}
	}
	return true
}

func memberOfAll(s *socketio.Socket, rooms []string) bool {
	have := s.Rooms()
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

// allow takes a token from the rule's bucket for this socket.
func (r *Router) allow(st *socketState, ru *rule) bool {
	if st.buckets == nil {
		st.buckets = make([]bucket, len(r.rules))
	}
	b := &st.buckets[ru.index]
	now := r.now()
	burst := float64(ru.cfg.RateBurst)
	if burst < 1 {
		burst = math.Max(1, math.Ceil(ru.cfg.RateLimit))
	}
	if b.last.IsZero() {
		b.tokens = burst
	} else {
		b.tokens = math.Min(burst, b.tokens+now.Sub(b.last).Seconds()*ru.cfg.RateLimit)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func state(s *socketio.Socket) *socketState {
	if st, ok := s.State().(*socketState); ok {
		return st
	}
	st := &socketState{}
	s.SetState(st)
	return st
}

// baseContext builds (once per socket) the variables that do not change
// between events.
func (r *Router) baseContext(s *socketio.Socket, st *socketState) (*hcl.EvalContext, error) {
	if st.base != nil {
		return st.base, nil
	}
	auth, err := config.ValueFromJSON(s.Auth())
	if err != nil {
		return nil, err
	}
	data, err := config.ValueFromJSON(s.Data())
	if err != nil {
		return nil, err
	}
	hs := s.Handshake()
	sc := config.Scope{Auth: auth, SocketID: s.ID(), Namespace: s.Namespace().Name(),
		User: s.User(), Data: data,
		Query: firstValues(hs.Query(), false), Headers: firstValues(hs.Headers, true)}
	st.base = sc.EvalContext()
	return st.base, nil
}

func (r *Router) eventContext(s *socketio.Socket, st *socketState, e *socketio.Event, withArgs bool) (*hcl.EvalContext, error) {
	base, err := r.baseContext(s, st)
	if err != nil {
		return nil, err
	}
	if !withArgs {
		return base, nil
	}
	vals := make([]cty.Value, len(e.Args))
	for i, a := range e.Args {
		if vals[i], err = config.ValueFromJSON(a); err != nil {
			return nil, err
		}
	}
	ctx := base.NewChild()
	ctx.Variables = map[string]cty.Value{config.VarArgs: cty.TupleVal(vals)}
	return ctx, nil
}

// rawArg reports whether an args element is a bare `auth` or `args[N]`,
// which are sent as the bytes the client sent (key order and number
// formatting kept) instead of a round trip through HCL values.
func rawArg(e hclsyntax.Expression) (root string, index int, ok bool) {
	st, isTrav := e.(*hclsyntax.ScopeTraversalExpr)
	if !isTrav {
		return "", 0, false
	}
	tr := st.Traversal
	switch {
	case len(tr) == 1 && tr.RootName() == config.VarAuth:
		return config.VarAuth, 0, true
	case len(tr) == 2 && tr.RootName() == config.VarArgs:
		ix, isIndex := tr[1].(hcl.TraverseIndex)
		if !isIndex || ix.Key.Type() != cty.Number {
			return "", 0, false
		}
		bf := ix.Key.AsBigFloat()
		if n, acc := bf.Int64(); acc == big.Exact && n >= 0 && n < 1<<16 {
			return config.VarArgs, int(n), true
		}
	}
	return "", 0, false
}

// evalArgs evaluates an args list to raw JSON values.
func (r *Router) evalArgs(s *socketio.Socket, a config.Args, ctx *hcl.EvalContext, eventArgs [][]byte) ([][]byte, error) {
	if a.Expr == nil {
		return nil, nil
	}
	if tup, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok {
		out := make([][]byte, 0, len(tup.Exprs))
		for _, el := range tup.Exprs {
			root, i, raw := rawArg(el)
			switch {
			case raw && root == config.VarAuth:
				out = append(out, s.Auth())
				continue
			case raw && root == config.VarArgs && i < len(eventArgs):
				out = append(out, eventArgs[i])
				continue
			}
			b, err := r.evalOne(s, el, ctx)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
		return out, nil
	}
	if ctx == nil {
		var err error
		if ctx, err = r.baseContext(s, state(s)); err != nil {
			return nil, err
		}
	}
	vals, diags := a.Eval(ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		b, err := config.ValueToJSON(v)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// evalOne evaluates one expression to JSON.
func (r *Router) evalOne(s *socketio.Socket, e hcl.Expression, ctx *hcl.EvalContext) ([]byte, error) {
	if ctx == nil {
		var err error
		if ctx, err = r.baseContext(s, state(s)); err != nil {
			return nil, err
		}
	}
	v, diags := e.Value(ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	return config.ValueToJSON(v)
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

func (r *Router) serverBroadcast(ns *socketio.Namespace, b *config.Broadcast, args, attachments [][]byte,
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
	se, ok := e.(hclsyntax.Expression)
	if !ok {
		return nil, false
	}
	if root, i, raw := rawArg(se); raw && root == config.VarArgs && i < len(args) {
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
