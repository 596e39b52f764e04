package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/sdk"
)

// Bounds of the request machinery.
const (
	maxQueuedAnswers  = 4096  // our answers waiting to be published
	maxQueuedRequests = 4096  // incoming requests waiting for the core's handler
	maxAnswersPending = 65536 // answers to one of our requests not yet handed to its caller
	answerBatch       = 256   // answers per pipeline
)

// Channel names, as the Node adapter builds them.
func (c *classic) requestChannel(nsp string) string  { return c.key + "-request#" + nsp + "#" }
func (c *classic) responseChannel(nsp string) string { return c.key + "-response#" + nsp + "#" }
func (c *classic) specificChannel(nsp string) string {
	return c.key + "-response#" + nsp + "#" + c.uid + "#"
}

// start runs, once, the reader of the request/response channels and the
// publisher of our answers.
func (c *classic) start() {
	c.startOnce.Do(func() {
		c.rsub = newSubConn(c.rdb, "requests subscription", c.rt.met, c.onMessage)
		c.wg.Add(2)
		go func() { defer c.wg.Done(); c.rsub.run(c.ctx) }()
		go func() { defer c.wg.Done(); c.publishAnswers() }()
	})
}

func (c *classic) onMessage(m *redis.Message) {
	c.mu.Lock()
	role, ok := c.chans[m.Channel]
	c.mu.Unlock()
	switch {
	case !ok:
	case role.request:
		c.onRequest(role.nsp, []byte(m.Payload))
	default:
		c.onResponse([]byte(m.Payload))
	}
}

// subscribeResponses subscribes to the response channels of nsp (once)
// and returns them.
func (c *classic) subscribeResponses(ctx context.Context, nsp string) []string {
	resp, spec := c.responseChannel(nsp), c.specificChannel(nsp)
	c.mu.Lock()
	fresh := !c.respSubs[nsp]
	if fresh {
		c.respSubs[nsp] = true
		c.chans[resp] = chanRole{nsp: nsp}
		c.chans[spec] = chanRole{nsp: nsp}
	}
	c.mu.Unlock()
	if fresh {
		_ = c.rsub.subscribe(ctx, resp, spec) // when Redis is down, subscribed on reconnect
	}
	return []string{resp, spec}
}

// ---- this instance asks ----

// pending is one of our requests: the answers received, handed to the
// caller by the goroutine in request.
type pending struct {
	typ    sdk.RequestType
	notify chan struct{} // cap 1

	mu      sync.Mutex
	queue   []sdk.ClusterResponse
	servers int // servers that answered (for a broadcast: sent their client count)
	clients int // broadcast: acks announced
	acks    int // broadcast: acks received
}

func (p *pending) push(r sdk.ClusterResponse, server bool, clients int, ack bool, met *metrics) {
	p.mu.Lock()
	if server {
		p.servers++
	}
	p.clients += clients
	if ack {
		p.acks++
	}
	if len(p.queue) < maxAnswersPending {
		p.queue = append(p.queue, r)
	} else {
		met.answerDropped.Add(1)
	}
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// take returns the queued answers and whether every expected one is in.
func (p *pending) take(expected int) ([]sdk.ClusterResponse, int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queue
	p.queue = nil
	complete := p.servers >= expected && (p.typ != sdk.RequestBroadcastAck || p.acks >= p.clients)
	return q, p.servers, complete
}

func (c *classic) request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error) {
	var res sdk.RequestResult
	nsp := nspOrRoot(req.Namespace)
	req.Namespace = nsp
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = c.rt.requestsTimeout
	}
	if req.Type == sdk.RequestBroadcastAck {
		req.Timeout = timeout // the flags.timeout the other servers see
	}
	c.start()
	reqCh := c.requestChannel(nsp)
	id := newUID()
	if !req.Type.Answered(req.WantAck) {
		payload, err := encodeRequest(c.uid, id, &req)
		if err != nil {
			return res, fmt.Errorf(`adapter "redis": %s request: %w`, req.Type, err)
		}
		if err := c.rdb.Publish(ctx, reqCh, payload).Err(); err != nil {
			return res, fmt.Errorf(`adapter "redis": %s request: publish: %w`, req.Type, err)
		}
		return res, nil
	}

	deadline := time.Now().Add(timeout)
	sctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	// An answer published before our response channels are live is lost.
	if err := c.rsub.waitConfirmed(sctx, c.subscribeResponses(sctx, nsp)...); err != nil {
		return res, fmt.Errorf(`adapter "redis": %s request: %w`, req.Type, err)
	}
	// The server count is the request channel's subscribers, as Node
	// counts it; we are one of them when we serve the namespace.
	counts, err := c.rdb.PubSubNumSub(sctx, reqCh).Result()
	if err != nil {
		return res, fmt.Errorf(`adapter "redis": %s request: PUBSUB NUMSUB: %w`, req.Type, err)
	}
	expected := int(counts[reqCh])
	if c.rsub.isConfirmed(reqCh) {
		expected--
	}
	if expected <= 0 {
		return res, nil
	}
	res.Expected = expected

	p := &pending{typ: req.Type, notify: make(chan struct{}, 1)}
	c.mu.Lock()
	for c.pending[id] != nil {
		id = newUID()
	}
	c.pending[id] = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	payload, err := encodeRequest(c.uid, id, &req)
	if err != nil {
		return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": %s request: %w`, req.Type, err)
	}
	if err := c.rdb.Publish(sctx, reqCh, payload).Err(); err != nil {
		return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": %s request: publish: %w`, req.Type, err)
	}
	for {
		answers, servers, complete := p.take(expected)
		for _, a := range answers {
			answer(a)
		}
		res.Answered = servers
		if complete {
			return res, nil
		}
		select {
		case <-p.notify:
		case <-sctx.Done():
			answers, servers, _ := p.take(expected)
			for _, a := range answers {
				answer(a)
			}
			res.Answered = servers
			if err := ctx.Err(); err != nil { // the caller gave up, not our timeout
				return res, fmt.Errorf(`adapter "redis": %s request: %w`, req.Type, err)
			}
			return res, nil
		}
	}
}

// onResponse hands an answer to the request it answers, if still waiting.
func (c *classic) onResponse(b []byte) {
	f, err := parseFields(b)
	if err != nil {
		return
	}
	id, _ := f.str("requestId")
	c.mu.Lock()
	p := c.pending[id]
	c.mu.Unlock()
	if p == nil {
		return
	}
	typ := -1
	if t, ok := f.num("type"); ok {
		typ = int(t)
	}
	met := c.rt.met
	switch p.typ {
	case sdk.RequestFetchSockets:
		p.push(sdk.ClusterResponse{Sockets: parseSockets(f["sockets"])}, true, 0, false, met)
	case sdk.RequestAllRooms:
		p.push(sdk.ClusterResponse{Rooms: f.strs("rooms")}, true, 0, false, met)
	case sdk.RequestServerSideEmit:
		if typ == wireServerSideEmit {
			ack, att := f["data"].ack()
			p.push(sdk.ClusterResponse{Ack: ack, AckAttachments: att}, true, 0, false, met)
		}
	case sdk.RequestBroadcastAck:
		switch typ {
		case wireBroadcastClientCount:
			n, _ := f.num("clientCount")
			p.push(sdk.ClusterResponse{Count: true, ClientCount: int(n)}, true, int(n), false, met)
		case wireBroadcastAck:
			ack, att := f["packet"].ack()
			p.push(sdk.ClusterResponse{Ack: ack, AckAttachments: att}, false, 0, true, met)
		}
	}
}

// ---- other instances ask ----

// server is one ServeRequests call: its handler, called by one goroutine.
type server struct {
	in  chan sdk.IncomingRequest
	met *metrics
}

// enqueue never blocks: a request that does not fit is dropped and counted.
func (s *server) enqueue(r sdk.IncomingRequest) {
	select {
	case s.in <- r:
	default:
		s.met.reqDropped.Add(1)
	}
}

func (c *classic) serveRequests(ctx context.Context, namespaces []string, handle func(sdk.IncomingRequest)) error {
	c.start()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()
	s := &server{in: make(chan sdk.IncomingRequest, maxQueuedRequests), met: c.rt.met}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case r := <-s.in:
				handle(r)
			case <-ctx.Done():
				return
			}
		}
	}()
	var nsps []string
	for _, n := range namespaces {
		if n = nspOrRoot(n); !slices.Contains(nsps, n) {
			nsps = append(nsps, n)
		}
	}
	// subMu keeps each SUBSCRIBE or UNSUBSCRIBE in the order of the
	// decisions to send it: an ending ServeRequests's UNSUBSCRIBE must not
	// overtake the SUBSCRIBE of one starting on the same namespace.
	var fresh []string
	c.subMu.Lock()
	c.mu.Lock()
	for _, nsp := range nsps {
		c.servers[nsp] = append(c.servers[nsp], s)
		if len(c.servers[nsp]) == 1 {
			ch := c.requestChannel(nsp)
			c.chans[ch] = chanRole{nsp: nsp, request: true}
			fresh = append(fresh, ch)
		}
	}
	c.mu.Unlock()
	if len(fresh) > 0 {
		_ = c.rsub.subscribe(ctx, fresh...) // retried on reconnect
	}
	c.subMu.Unlock()
	for _, nsp := range nsps { // Node subscribes to these too, whether it asks or not
		c.subscribeResponses(ctx, nsp)
	}
	<-ctx.Done()

	// No longer a server of these namespaces: leave the request channels,
	// so that PUBSUB NUMSUB stops counting us.
	var gone []string
	c.subMu.Lock()
	c.mu.Lock()
	for _, nsp := range nsps {
		list := slices.DeleteFunc(c.servers[nsp], func(x *server) bool { return x == s })
		if len(list) == 0 {
			delete(c.servers, nsp)
			ch := c.requestChannel(nsp)
			delete(c.chans, ch)
			gone = append(gone, ch)
		} else {
			c.servers[nsp] = list
		}
	}
	c.mu.Unlock()
	if len(gone) > 0 && c.ctx.Err() == nil {
		uctx, ucancel := context.WithTimeout(c.ctx, 5*time.Second)
		_ = c.rsub.unsubscribe(uctx, gone...)
		ucancel()
	}
	c.subMu.Unlock()
	<-done
	return ctx.Err()
}

func (c *classic) serverOf(nsp string) *server {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.servers[nsp]
	if len(list) == 0 {
		return nil
	}
	return list[len(list)-1]
}

// onRequest turns a request from another instance (or an emitter) into an
// IncomingRequest for the core, with a Respond that publishes the answer
// in Node's format.
func (c *classic) onRequest(nsp string, b []byte) {
	r, err := parseRequest(b)
	if err != nil || r.uid == c.uid {
		return // malformed, or our own request coming back
	}
	s := c.serverOf(nsp)
	if s == nil {
		return
	}
	wait := c.rt.requestsTimeout
	if r.typ == wireBroadcast && r.timeout > 0 {
		wait = r.timeout
	}
	a := &answerer{c: c, channel: c.responseChannel(nsp), requestID: r.requestID, deadline: time.Now().Add(wait)}
	in := sdk.IncomingRequest{ClusterRequest: sdk.ClusterRequest{Namespace: nsp, Rooms: r.rooms, Except: r.except}}
	switch r.typ {
	case wireSockets:
		in.Type, in.Rooms = sdk.RequestFetchSockets, r.targets
		in.Respond = a.once(func(resp sdk.ClusterResponse) ([]byte, error) {
			return encodeSocketIDsAnswer(r.requestID, resp.Sockets)
		})
	case wireAllRooms:
		in.Type = sdk.RequestAllRooms
		in.Respond = a.once(func(resp sdk.ClusterResponse) ([]byte, error) {
			return encodeRoomsAnswer(r.requestID, resp.Rooms)
		})
	case wireRemoteJoin, wireRemoteLeave, wireRemoteDisconnect:
		in.Type = remoteTypes[r.typ]
		in.Targets, in.Close = r.targets, r.close
		if !r.hasOpts {
			c.legacy(s, in, r, a)
			return
		}
	case wireRemoteFetch:
		in.Type = sdk.RequestFetchSockets
		in.Respond = a.once(func(resp sdk.ClusterResponse) ([]byte, error) {
			return encodeFetchAnswer(r.requestID, resp.Sockets)
		})
	case wireServerSideEmit:
		if !r.data.event() {
			return
		}
		in.Type, in.Rooms, in.Except = sdk.RequestServerSideEmit, nil, nil
		in.Data, in.Attachments = r.data.raw, r.data.att
		if in.WantAck = r.hasRequestID; in.WantAck {
			in.Respond = a.once(func(resp sdk.ClusterResponse) ([]byte, error) {
				return encodeAckAnswer(wireServerSideEmit, r.requestID, resp.Ack, resp.AckAttachments)
			})
		}
	case wireBroadcast:
		if !r.data.event() || !r.hasRequestID {
			return
		}
		in.Type, in.Timeout = sdk.RequestBroadcastAck, wait
		in.Data, in.Attachments = r.data.raw, r.data.att
		in.Respond = a.respond(func(resp sdk.ClusterResponse) ([]byte, error) {
			if resp.Count {
				return encodeClientCountAnswer(r.requestID, resp.ClientCount)
			}
			return encodeAckAnswer(wireBroadcastAck, r.requestID, resp.Ack, resp.AckAttachments)
		})
	default:
		return
	}
	s.enqueue(in)
}

var remoteTypes = map[int]sdk.RequestType{
	wireRemoteJoin: sdk.RequestSocketsJoin, wireRemoteLeave: sdk.RequestSocketsLeave,
	wireRemoteDisconnect: sdk.RequestDisconnectSockets,
}

// legacy serves the old single-socket join/leave/disconnect
// ({sid, room, requestId}): only the server holding the socket acts and
// answers {requestId}. Whether we hold it is asked of the core first.
func (c *classic) legacy(s *server, act sdk.IncomingRequest, r *wireRequest, a *answerer) {
	if r.sid == "" {
		return
	}
	act.Rooms, act.Except = []string{r.sid}, nil
	if act.Type != sdk.RequestDisconnectSockets {
		if r.room == "" {
			return
		}
		act.Targets = []string{r.room}
	}
	ack := a.once(func(sdk.ClusterResponse) ([]byte, error) { return encodeLegacyAnswer(r.requestID) })
	var once sync.Once
	s.enqueue(sdk.IncomingRequest{
		ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: act.Namespace, Rooms: []string{r.sid}},
		Respond: func(resp sdk.ClusterResponse) {
			if !slices.ContainsFunc(resp.Sockets, func(x sdk.RemoteSocket) bool { return x.ID == r.sid }) {
				return
			}
			once.Do(func() {
				s.enqueue(act)
				if r.hasRequestID {
					ack(sdk.ClusterResponse{})
				}
			})
		},
	})
}

// answerer publishes the answers to one incoming request until its
// deadline, through the answers queue (Respond must not block).
type answerer struct {
	c         *classic
	channel   string // always the shared response channel, as Node answers by default
	requestID string
	deadline  time.Time
}

type outResp struct {
	channel  string
	payload  []byte
	deadline time.Time
}

func (a *answerer) respond(encode func(sdk.ClusterResponse) ([]byte, error)) func(sdk.ClusterResponse) {
	return func(resp sdk.ClusterResponse) {
		met := a.c.rt.met
		if time.Now().After(a.deadline) {
			met.respLate.Add(1)
			return
		}
		payload, err := encode(resp)
		if err != nil {
			met.respInvalid.Add(1)
			return
		}
		select {
		case a.c.answers <- outResp{channel: a.channel, payload: payload, deadline: a.deadline}:
		default:
			met.respFull.Add(1)
		}
	}
}

// once is respond for requests answered once per server: later calls are
// ignored.
func (a *answerer) once(encode func(sdk.ClusterResponse) ([]byte, error)) func(sdk.ClusterResponse) {
	var once sync.Once
	send := a.respond(encode)
	return func(resp sdk.ClusterResponse) { once.Do(func() { send(resp) }) }
}

// publishAnswers publishes queued answers in pipelines, retrying while
// Redis is down until each answer's deadline.
func (c *classic) publishAnswers() {
	met := c.rt.met
	batch := make([]outResp, 0, answerBatch)
	for {
		select {
		case r := <-c.answers:
			batch = append(batch, r)
		case <-c.ctx.Done():
			return
		}
	fill:
		for len(batch) < answerBatch {
			select {
			case r := <-c.answers:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		backoff := backoffMin
		for {
			now := time.Now()
			batch = slices.DeleteFunc(batch, func(r outResp) bool {
				if now.After(r.deadline) {
					met.respLate.Add(1)
					return true
				}
				return false
			})
			if len(batch) == 0 {
				break
			}
			ctx, cancel := context.WithTimeout(c.ctx, flushAttempt)
			pipe := c.rdb.Pipeline()
			for _, r := range batch {
				pipe.Publish(ctx, r.channel, r.payload)
			}
			_, err := pipe.Exec(ctx)
			cancel()
			if err == nil {
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			select {
			case <-time.After(backoff):
			case <-c.ctx.Done():
				return
			}
			backoff = min(2*backoff, backoffMax)
		}
		clear(batch)
		batch = batch[:0]
	}
}
