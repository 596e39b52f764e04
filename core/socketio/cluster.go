package socketio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socketfleet/socketfleet/core/protocol/siowire"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/sdk"
)

// Cluster is the cluster adapter as the Socket.IO layer uses it (the
// plugin link in practice). Send must not block.
type Cluster interface {
	Send(m sdk.AdapterMessage) bool
	// Request asks the other instances (sdk.Requester's contract); an error
	// wrapping sdk.ErrUnsupported means the adapter carries broadcasts only.
	Request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error)
}

// ServerEventHandler is implemented by handlers that take server-side emits
// (sdk.RequestServerSideEmit): events sent to the servers, not to clients.
type ServerEventHandler interface {
	// ServerEvent handles one server-side emit and reports whether it knew
	// the event. ack is nil when the sender wants no acknowledgement;
	// otherwise a handler that knew the event calls it once (from any
	// goroutine).
	ServerEvent(ns *Namespace, name string, args, attachments [][]byte, ack func(arg []byte, attachments [][]byte)) bool
}

// Reach says which servers a cluster-wide operation reached. Counts include
// this instance; for operations whose servers send no answer (join, leave,
// disconnect, a server-side emit without ack) only this instance is counted.
type Reach struct {
	// LocalOnly: there is no cluster adapter, or it carries broadcasts only,
	// so only this instance's sockets were concerned.
	LocalOnly bool
	Expected  int // servers expected to answer
	Answered  int // servers that answered in time
}

// AckReach is the outcome of a broadcast with acknowledgements.
type AckReach struct {
	Reach
	Clients int // clients the broadcast was sent to, on the servers that answered
	Acks    int // acknowledgements received in time
}

// nullJSON is the ack of a client or server that acknowledged without an argument.
var nullJSON = []byte("null")

// emptyObject is the data of a socket without any, as other servers get it.
var emptyObject = []byte("{}")

// maxClusterBackground bounds the cluster requests that event rules fire
// without waiting (server-side emits); beyond it they are dropped and counted.
const maxClusterBackground = 256

// backgroundTimeout bounds one such request.
const backgroundTimeout = 10 * time.Second

// ---- local execution: this instance's sockets ----

// LocalSockets returns this instance's sockets matching opts.
func (n *Namespace) LocalSockets(opts rooms.Options) []*Socket {
	ms := n.index.Select(opts)
	out := make([]*Socket, 0, len(ms))
	for _, m := range ms {
		if s, ok := m.(*Socket); ok {
			out = append(out, s)
		}
	}
	return out
}

// FetchLocal describes this instance's sockets matching opts, as
// fetchSockets does. At most max sockets when max > 0.
func (n *Namespace) FetchLocal(opts rooms.Options, max int) []sdk.RemoteSocket {
	out, _ := n.fetchLocal(opts, max)
	return out
}

func (n *Namespace) fetchLocal(opts rooms.Options, max int) (_ []sdk.RemoteSocket, truncated bool) {
	socks := n.LocalSockets(opts)
	if max > 0 && len(socks) > max {
		socks, truncated = socks[:max], true
	}
	out := make([]sdk.RemoteSocket, 0, len(socks))
	for _, s := range socks {
		data := s.data
		if len(data) == 0 {
			data = nullJSON
		}
		out = append(out, sdk.RemoteSocket{ID: s.id, Rooms: s.Rooms(), Data: data, Handshake: s.HandshakeJSON()})
	}
	return out, truncated
}

// LocalRooms returns the named rooms this instance holds in the namespace;
// with ids, also its sockets' own-id rooms (what Node's adapters answer to
// an all-rooms request).
func (n *Namespace) LocalRooms(ids bool) []string {
	rooms := n.index.AllRooms()
	if ids {
		rooms = append(rooms, n.index.Sockets(nil)...)
	}
	return rooms
}

// JoinLocal makes this instance's sockets matching opts join rooms.
func (n *Namespace) JoinLocal(opts rooms.Options, rooms []string) {
	for _, s := range n.LocalSockets(opts) {
		_ = s.Join(rooms...) // a refusal is counted (Stats.JoinsRefused)
	}
}

// LeaveLocal makes this instance's sockets matching opts leave rooms.
func (n *Namespace) LeaveLocal(opts rooms.Options, rooms []string) {
	for _, s := range n.LocalSockets(opts) {
		s.Leave(rooms...)
	}
}

// DisconnectLocal disconnects this instance's sockets matching opts; with
// close their whole Engine.IO connection is closed.
func (n *Namespace) DisconnectLocal(opts rooms.Options, close bool) {
	for _, s := range n.LocalSockets(opts) {
		s.Disconnect(close)
	}
}

// BroadcastWithAckLocal sends data to this instance's sockets matching opts,
// each with its own ack id, and returns how many it sent to. done is then
// called once per recipient, with the client's first ack argument ("null"
// when it sent none), or err set (ErrAckTimeout, ErrDisconnected), from
// any goroutine, possibly before this returns.
func (n *Namespace) BroadcastWithAckLocal(opts rooms.Options, data []byte, attachments [][]byte, timeout time.Duration,
	done func(ack []byte, attachments [][]byte, err error)) int {
	socks := n.LocalSockets(opts)
	n.srv.Stats.Broadcasts.Add(1)
	for _, s := range socks {
		s.emitDataWithAck(data, attachments, timeout, func(args, atts [][]byte, err error) {
			if err != nil {
				done(nil, nil, err)
				return
			}
			if len(args) == 0 {
				done(nullJSON, nil, nil)
				return
			}
			done(args[0], atts, nil)
		})
	}
	return len(socks)
}

// ServerEventLocal hands a server-side emit (data = ["event", ...args]) to
// this instance's handler and reports whether the handler knew the event.
// ack (nil when no acknowledgement is wanted) is called at most once.
func (n *Namespace) ServerEventLocal(data []byte, attachments [][]byte, ack func(arg []byte, attachments [][]byte)) bool {
	h, ok := n.handler.(ServerEventHandler)
	if !ok {
		n.srv.Stats.ServerEventsUnknown.Add(1)
		return false
	}
	name, args, err := siowire.EventName(&siowire.Packet{Type: siowire.Event, Data: data})
	if err != nil {
		n.srv.Stats.ServerEventsInvalid.Add(1)
		n.srv.log.WithError(err).WithField("namespace", n.name).Debug("invalid server-side emit dropped")
		return false
	}
	if !h.ServerEvent(n, name, args, attachments, ack) {
		n.srv.Stats.ServerEventsUnknown.Add(1)
		return false
	}
	return true
}

// HandshakeJSON describes the socket's handshake as Node's socket.handshake:
// {headers, time, address, xdomain, secure, issued, url, query, auth}.
func (s *Socket) HandshakeJSON() []byte {
	hs := s.Handshake()
	hdr := hs.Header()
	headers := make(map[string]string, len(hdr))
	for k, v := range hdr {
		headers[strings.ToLower(k)] = strings.Join(v, ", ") // Node joins repeated headers the same way
	}
	query := map[string]any{}
	if i := strings.IndexByte(hs.URL, '?'); i >= 0 {
		if q, err := url.ParseQuery(hs.URL[i+1:]); err == nil {
			for k, v := range q {
				if len(v) == 1 {
					query[k] = v[0]
				} else {
					query[k] = v
				}
			}
		}
	}
	auth := json.RawMessage(s.auth)
	if !siowire.Valid(auth) {
		auth = json.RawMessage("{}")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "&" in the url stays "&", as Node writes it
	err := enc.Encode(struct {
		Headers map[string]string `json:"headers"`
		Time    string            `json:"time"`
		Address string            `json:"address"`
		XDomain bool              `json:"xdomain"`
		Secure  bool              `json:"secure"`
		Issued  int64             `json:"issued"`
		URL     string            `json:"url"`
		Query   map[string]any    `json:"query"`
		Auth    json.RawMessage   `json:"auth"`
	}{headers, jsDate(hs.Time), hs.Address, hdr.Get("Origin") != "", hs.Secure,
		hs.Time.UnixMilli(), hs.URL, query, auth})
	if err != nil { // only strings, bools, numbers and validated JSON: cannot happen
		return []byte("{}")
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// jsDate formats t as JavaScript's Date.prototype.toString does, which is
// what Node puts in handshake.time.
func jsDate(t time.Time) string {
	zone := t.Format("MST")
	if zone == "UTC" {
		zone = "Coordinated Universal Time"
	}
	return t.Format("Mon Jan 02 2006 15:04:05 GMT-0700") + " (" + zone + ")"
}

// ---- requests from other instances ----

// ServeRequest executes a request from another instance on this instance's
// sockets and answers it through in.Respond. It returns at once; the acks
// of a broadcast are answered later, as clients send them.
func (srv *Server) ServeRequest(in sdk.IncomingRequest) {
	respond := in.Respond
	if respond == nil {
		respond = func(sdk.ClusterResponse) {}
	}
	ns := srv.Namespace(in.Namespace)
	if ns == nil {
		srv.Stats.ClusterRequestsIgnored.Add(1)
		switch in.Type { // answer what expects answers: an empty one is the truth
		case sdk.RequestFetchSockets, sdk.RequestAllRooms:
			respond(sdk.ClusterResponse{})
		case sdk.RequestBroadcastAck:
			respond(sdk.ClusterResponse{Count: true})
		}
		return
	}
	srv.Stats.ClusterRequestsServed.Add(1)
	opts := rooms.Options{Rooms: in.Rooms, Except: in.Except}
	switch in.Type {
	case sdk.RequestFetchSockets:
		socks := ns.FetchLocal(opts, 0)
		for i := range socks {
			// Node's socket.data is {} unless set, and Node code reading a
			// remote socket's data (the admin-ui package's, for one) counts on
			// an object.
			if string(socks[i].Data) == "null" {
				socks[i].Data = emptyObject
			}
		}
		respond(sdk.ClusterResponse{Sockets: socks})
	case sdk.RequestAllRooms:
		respond(sdk.ClusterResponse{Rooms: ns.LocalRooms(true)})
	case sdk.RequestSocketsJoin:
		ns.JoinLocal(opts, in.Targets)
	case sdk.RequestSocketsLeave:
		ns.LeaveLocal(opts, in.Targets)
	case sdk.RequestDisconnectSockets:
		ns.DisconnectLocal(opts, in.Close)
	case sdk.RequestServerSideEmit:
		var ack func([]byte, [][]byte)
		if in.WantAck && in.Respond != nil {
			var once sync.Once
			ack = func(arg []byte, atts [][]byte) {
				once.Do(func() { respond(sdk.ClusterResponse{Ack: orNull(arg), AckAttachments: atts}) })
			}
		}
		ns.ServerEventLocal(in.Data, in.Attachments, ack)
	case sdk.RequestBroadcastAck:
		timeout := in.Timeout
		if timeout <= 0 {
			timeout = srv.opts.AckTimeout
		}
		relay := &ackRelay{respond: respond}
		n := ns.BroadcastWithAckLocal(opts, in.Data, in.Attachments, timeout, relay.ack)
		relay.count(n)
	default:
		srv.Stats.ClusterRequestsIgnored.Add(1)
	}
}

// ackRelay answers a remote broadcast with acks: the client count first,
// then one answer per ack. Acks that come before the count is known wait.
type ackRelay struct {
	mu      sync.Mutex
	respond func(sdk.ClusterResponse)
	counted bool
	early   []sdk.ClusterResponse // at most one per recipient
}

func (r *ackRelay) ack(arg []byte, atts [][]byte, err error) {
	if err != nil {
		return // the requester times this client out itself
	}
	resp := sdk.ClusterResponse{Ack: arg, AckAttachments: atts}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.counted {
		r.early = append(r.early, resp)
		return
	}
	r.respond(resp)
}

func (r *ackRelay) count(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.respond(sdk.ClusterResponse{Count: true, ClientCount: n})
	for _, resp := range r.early {
		r.respond(resp)
	}
	r.early, r.counted = nil, true
}

func orNull(b []byte) []byte {
	if len(b) == 0 {
		return nullJSON
	}
	return b
}

// ---- cluster-wide operations: this instance and every other ----

// request sends req to the other instances. Without a cluster adapter, or
// with one that carries broadcasts only, it reports LocalOnly and no error.
func (n *Namespace) request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (Reach, error) {
	reach := Reach{Expected: 1, Answered: 1}
	c := n.srv.cluster
	if c == nil {
		reach.LocalOnly = true
		return reach, nil
	}
	if answer == nil {
		answer = func(sdk.ClusterResponse) {}
	}
	req.Namespace = n.name
	res, err := c.Request(ctx, req, answer)
	if err != nil {
		if errors.Is(err, sdk.ErrUnsupported) {
			reach.LocalOnly = true
			return reach, nil
		}
		n.srv.Stats.ClusterRequestErrors.Add(1)
		return reach, fmt.Errorf("cluster request %s in namespace %s: %w", req.Type, n.name, err)
	}
	n.srv.Stats.ClusterRequestsSent.Add(1)
	reach.Expected += res.Expected
	reach.Answered += res.Answered
	return reach, nil
}

// FetchSockets describes the sockets matching opts on every instance. At
// most max sockets are kept when max > 0 (truncated then reports it).
func (n *Namespace) FetchSockets(ctx context.Context, opts rooms.Options, max int) (socks []sdk.RemoteSocket, truncated bool, reach Reach, err error) {
	socks, truncated = n.fetchLocal(opts, max)
	reach, err = n.request(ctx, sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Rooms: opts.Rooms, Except: opts.Except},
		func(r sdk.ClusterResponse) {
			for _, s := range r.Sockets {
				if max > 0 && len(socks) >= max {
					truncated = true
					return
				}
				socks = append(socks, s)
			}
		})
	return socks, truncated, reach, err
}

// AllRooms returns the named rooms held anywhere in the cluster, each once,
// socket-id rooms excluded: exactly for this instance; for the others,
// which report their sockets' own rooms too (as Node does), rooms that look
// like a socket id by Node's test (sdk.LooksLikeSocketID) are left out.
func (n *Namespace) AllRooms(ctx context.Context) ([]string, Reach, error) {
	rooms := n.LocalRooms(false)
	seen := make(map[string]struct{}, len(rooms))
	for _, r := range rooms {
		seen[r] = struct{}{}
	}
	add := func(room string) {
		if _, dup := seen[room]; dup || sdk.LooksLikeSocketID(room) {
			return
		}
		seen[room] = struct{}{}
		rooms = append(rooms, room)
	}
	reach, err := n.request(ctx, sdk.ClusterRequest{Type: sdk.RequestAllRooms}, func(r sdk.ClusterResponse) {
		for _, room := range r.Rooms {
			add(room)
		}
	})
	if err == nil && reach.LocalOnly && n.srv.cluster != nil {
		// The adapter has no all-rooms request (Node's ClusterAdapter, on
		// which the sharded and streams modes are built, has none): the
		// rooms of every socket elsewhere tell the same, at the cost of
		// fetching them.
		reach, err = n.request(ctx, sdk.ClusterRequest{Type: sdk.RequestFetchSockets}, func(r sdk.ClusterResponse) {
			for _, s := range r.Sockets {
				for _, room := range s.Rooms {
					if room != s.ID {
						add(room)
					}
				}
			}
		})
	}
	return rooms, reach, err
}

// SocketsJoin makes the sockets matching opts join rooms, on every instance.
func (n *Namespace) SocketsJoin(ctx context.Context, opts rooms.Options, rooms []string) (Reach, error) {
	n.JoinLocal(opts, rooms)
	return n.request(ctx, sdk.ClusterRequest{Type: sdk.RequestSocketsJoin, Rooms: opts.Rooms, Except: opts.Except, Targets: rooms}, nil)
}

// SocketsLeave makes the sockets matching opts leave rooms, on every instance.
func (n *Namespace) SocketsLeave(ctx context.Context, opts rooms.Options, rooms []string) (Reach, error) {
	n.LeaveLocal(opts, rooms)
	return n.request(ctx, sdk.ClusterRequest{Type: sdk.RequestSocketsLeave, Rooms: opts.Rooms, Except: opts.Except, Targets: rooms}, nil)
}

// DisconnectSockets disconnects the sockets matching opts on every
// instance; with close, their whole connections.
func (n *Namespace) DisconnectSockets(ctx context.Context, opts rooms.Options, close bool) (Reach, error) {
	n.DisconnectLocal(opts, close)
	return n.request(ctx, sdk.ClusterRequest{Type: sdk.RequestDisconnectSockets, Rooms: opts.Rooms, Except: opts.Except, Close: close}, nil)
}

// collector serializes answers from this instance and the others into one
// callback, and drops whatever comes after the operation returned.
type collector struct {
	mu    sync.Mutex
	fn    func(ack []byte, attachments [][]byte)
	n     int
	local bool // this instance's own answer was taken
	done  bool
}

// add takes one answer; local says it is this instance's own.
func (c *collector) add(ack []byte, atts [][]byte, local bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return
	}
	c.n++
	c.local = c.local || local
	if c.fn != nil {
		c.fn(orNull(ack), atts)
	}
}

// finish drops every later answer and says how many were taken, and
// whether this instance's was one of them.
func (c *collector) finish() (n int, local bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
	return c.n, c.local
}

// ServerSideEmit sends a server-side emit (data = ["event", ...args]) to
// every instance's server-side handlers, this one's included. With onAck,
// each server's acknowledgement goes to onAck (never concurrently) until
// every server answered or ctx ends (without a deadline in ctx, the
// adapter's request timeout applies to the others).
func (n *Namespace) ServerSideEmit(ctx context.Context, data []byte, attachments [][]byte,
	onAck func(ack []byte, attachments [][]byte)) (Reach, error) {
	if onAck == nil {
		n.ServerEventLocal(data, attachments, nil)
		return n.request(ctx, sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Data: data, Attachments: attachments}, nil)
	}
	col := &collector{fn: onAck}
	localDone := make(chan struct{})
	var once sync.Once
	handled := n.ServerEventLocal(data, attachments, func(arg []byte, atts [][]byte) {
		once.Do(func() {
			col.add(arg, atts, true)
			close(localDone)
		})
	})
	reach, err := n.request(ctx, sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Data: data, Attachments: attachments, WantAck: true},
		func(r sdk.ClusterResponse) { col.add(r.Ack, r.AckAttachments, false) })
	if handled {
		select {
		case <-localDone:
		case <-ctx.Done():
		}
	}
	// Counted only if its ack was taken: one that comes after finish is
	// dropped, so it must not count as an answer either.
	if _, local := col.finish(); !local {
		reach.Answered--
	}
	return reach, err
}

// ServerSideEmitAsync is ServerSideEmit without acknowledgements for
// callers that must not wait (event rules on a client's read loop): this
// instance's handler runs now, the request to the others in the
// background, bounded; over the bound it is dropped and counted.
func (n *Namespace) ServerSideEmitAsync(data []byte, attachments [][]byte) {
	n.ServerEventLocal(data, attachments, nil)
	if n.srv.cluster == nil {
		return
	}
	select {
	case n.srv.background <- struct{}{}:
	default:
		n.srv.Stats.ClusterRequestsDropped.Add(1)
		return
	}
	go func() {
		defer func() { <-n.srv.background }()
		ctx, cancel := context.WithTimeout(context.Background(), backgroundTimeout)
		defer cancel()
		if _, err := n.request(ctx, sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Data: data, Attachments: attachments}, nil); err != nil {
			n.srv.log.WithError(err).Warn("server-side emit not sent to the other instances")
		}
	}()
}

// BroadcastWithAck sends data (["event", ...args]) to the sockets matching
// opts on every instance and asks each client to acknowledge: onAck gets
// each client's first ack argument (never concurrently) until every client
// answered or timeout (0 = the server's ack_timeout) passed.
func (n *Namespace) BroadcastWithAck(ctx context.Context, opts rooms.Options, data []byte, attachments [][]byte,
	timeout time.Duration, onAck func(ack []byte, attachments [][]byte)) (AckReach, error) {
	if timeout <= 0 {
		timeout = n.srv.opts.AckTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	col := &collector{fn: onAck}
	localDone := make(chan struct{})
	var closeOnce sync.Once
	var remaining atomic.Int64 // recipients not yet settled; may dip below 0 until the count is added
	settle := func() { closeOnce.Do(func() { close(localDone) }) }
	local := n.BroadcastWithAckLocal(opts, data, attachments, timeout, func(ack []byte, atts [][]byte, err error) {
		if err == nil {
			col.add(ack, atts, false)
		}
		if remaining.Add(-1) == 0 {
			settle()
		}
	})
	if remaining.Add(int64(local)) == 0 {
		settle()
	}
	out := AckReach{Clients: local}
	var err error
	out.Reach, err = n.request(ctx, sdk.ClusterRequest{Type: sdk.RequestBroadcastAck, Rooms: opts.Rooms, Except: opts.Except,
		Data: data, Attachments: attachments, Timeout: timeout},
		func(r sdk.ClusterResponse) {
			if r.Count {
				out.Clients += r.ClientCount
				return
			}
			col.add(r.Ack, r.AckAttachments, false)
		})
	select {
	case <-localDone:
	case <-ctx.Done():
	}
	out.Acks, _ = col.finish()
	return out, err
}
