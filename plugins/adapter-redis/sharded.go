package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/socketfleet/socketfleet/sdk"
)

// The sharded mode speaks the format of Node's createShardedAdapter
// (@socket.io/redis-adapter 8.3, built on socket.io-adapter's
// ClusterAdapter): every message is {type, data, uid, nsp}, as JSON, or as
// notepack msgpack when its type may carry binary and it does.

// ClusterAdapter message types.
const (
	shInitialHeartbeat = 1
	shHeartbeat        = 2
	shBroadcast        = 3
	shSocketsJoin      = 4
	shSocketsLeave     = 5
	shDisconnect       = 6
	shFetchSockets     = 7
	shFetchResponse    = 8
	shServerSideEmit   = 9
	shSSEResponse      = 10
	shClientCount      = 11
	shBroadcastAck     = 12
	shAdapterClose     = 13
)

// Subscription modes (Node's subscriptionMode option).
const (
	subDynamic        = "dynamic"
	subStatic         = "static"
	subDynamicPrivate = "dynamic-private"
)

const (
	// shInbox bounds the messages waiting between the Redis readers and the
	// dispatcher.
	shInbox = 4 * maxDeliver
	// shHealthEvery is how long a quiet subscription connection waits
	// before it PINGs; a PING unanswered for as long again replaces it.
	shHealthEvery = 3 * time.Second
	// shMaxAnswers bounds the answers waiting for one request's caller;
	// more are dropped (a broadcast with ack to thousands of clients whose
	// caller stalls).
	shMaxAnswers = 4096
	// shMaxReplies bounds our answers waiting to be published.
	shMaxReplies = 4096
)

// shardedConfig is the part of the block only this mode reads.
type shardedConfig struct {
	SubscriptionMode string   `json:"subscription_mode"`
	ClusterNodes     []string `json:"cluster_nodes"`
}

// sharded is the mode of Node's createShardedAdapter: SPUBLISH/SSUBSCRIBE
// on <key>#<nsp># (requests and broadcasts), <key>#<nsp>#<uid># (answers to
// us) and, in the dynamic modes, <key>#<nsp>#<room># for the rooms this
// instance holds.
type sharded struct {
	rdb     redis.UniversalClient
	cluster bool // Redis Cluster: one subscription per slot, counts summed over masters
	key     string
	uid     string
	submode string
	timeout time.Duration // requests_timeout, from the shell (attach)
	met     *metrics      // the shell's, or nil

	start  sync.Once       // the goroutines start on first use, after attach
	ctx    context.Context // ends at close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	in     chan *redis.Message // from every subscription to the dispatcher
	out    chan shReply        // our answers, to the reply publisher

	subMu sync.Mutex // serializes subscription changes (they do I/O)
	slots map[int]*shSlot
	chans map[string]int  // subscribed channel → its reasons (namespace served, room held)
	rooms map[string]bool // room channels subscribed as rooms
	down  map[int]error   // slots whose connection is failing (for Status)

	mu      sync.Mutex
	sink    *shSink
	handle  *shHandler
	pending map[string]*shPending
	served  []string // namespace channels ServeRequests subscribed
}

type shSink struct {
	ch   chan sdk.AdapterMessage
	done chan struct{}
}

type shHandler struct{ fn func(sdk.IncomingRequest) }

type shPending struct {
	typ int // the response type answering it (BROADCAST_ACK also takes CLIENT_COUNT)
	ch  chan sdk.ClusterResponse
}

type shReply struct {
	channel  string
	payload  []byte
	deadline time.Time
}

// newSharded returns the sharded mode. opts is the parsed url; raw the
// whole block, for the attributes only this mode reads.
func newSharded(opts *redis.Options, key string, raw sdk.Config) (mode, error) {
	var c shardedConfig
	if err := raw.Decode(&c); err != nil {
		return nil, err
	}
	for _, n := range c.ClusterNodes {
		if _, _, err := net.SplitHostPort(n); err != nil {
			return nil, fmt.Errorf("cluster_nodes: %q is not host:port", n)
		}
	}
	switch c.SubscriptionMode {
	case "":
		c.SubscriptionMode = subDynamic
	case subDynamic, subStatic, subDynamicPrivate:
	default:
		return nil, fmt.Errorf(`subscription_mode must be "dynamic", "static" or "dynamic-private", not %q`, c.SubscriptionMode)
	}
	var rdb redis.UniversalClient
	if len(c.ClusterNodes) > 0 {
		if opts.DB != 0 {
			return nil, errors.New("a Redis Cluster has no database other than 0 (url)")
		}
		rdb = redis.NewClusterClient(clusterOptions(opts, c.ClusterNodes))
	} else {
		rdb = redis.NewClient(opts)
	}
	return newShardedMode(rdb, key, c.SubscriptionMode, defaultRequestsTimeout), nil
}

// clusterOptions seeds a cluster client with the url's node and the
// cluster_nodes, with the url's credentials, TLS and timeouts for all.
func clusterOptions(o *redis.Options, nodes []string) *redis.ClusterOptions {
	addrs := []string{o.Addr}
	for _, n := range nodes {
		if n != o.Addr {
			addrs = append(addrs, n)
		}
	}
	return &redis.ClusterOptions{
		Addrs:           addrs,
		ClientName:      o.ClientName,
		Protocol:        o.Protocol,
		Username:        o.Username,
		Password:        o.Password,
		MaxRetries:      o.MaxRetries,
		MinRetryBackoff: o.MinRetryBackoff,
		MaxRetryBackoff: o.MaxRetryBackoff,
		DialTimeout:     o.DialTimeout,
		ReadTimeout:     o.ReadTimeout,
		WriteTimeout:    o.WriteTimeout,
		PoolSize:        o.PoolSize,
		PoolTimeout:     o.PoolTimeout,
		MinIdleConns:    o.MinIdleConns,
		MaxIdleConns:    o.MaxIdleConns,
		ConnMaxIdleTime: o.ConnMaxIdleTime,
		ConnMaxLifetime: o.ConnMaxLifetime,
		TLSConfig:       o.TLSConfig,
	}
}

func newShardedMode(rdb redis.UniversalClient, key, submode string, timeout time.Duration) *sharded {
	_, cluster := rdb.(*redis.ClusterClient)
	ctx, cancel := context.WithCancel(context.Background())
	s := &sharded{
		rdb: rdb, cluster: cluster, key: key, uid: shRandomID(), submode: submode, timeout: timeout,
		ctx: ctx, cancel: cancel,
		in:    make(chan *redis.Message, shInbox),
		out:   make(chan shReply, shMaxReplies),
		slots: map[int]*shSlot{}, chans: map[string]int{}, rooms: map[string]bool{}, down: map[int]error{},
		pending: map[string]*shPending{},
	}
	return s
}

// attach takes the shell's metrics (its go-redis hook on our client, our
// subscription health) and request timeout; called before any other
// method.
func (s *sharded) attach(rt *runtime) {
	s.met = rt.met
	if rt.met != nil {
		s.rdb.AddHook(rt.met)
	}
	if rt.requestsTimeout > 0 {
		s.timeout = rt.requestsTimeout
	}
}

// count updates the shell's metrics, when there are any.
func (s *sharded) count(f func(*metrics)) {
	if s.met != nil {
		f(s.met)
	}
}

// run starts the dispatcher and the reply publisher, once.
func (s *sharded) run() {
	s.start.Do(func() {
		s.wg.Add(2)
		go s.dispatch()
		go s.publishReplies()
	})
}

// shRandomID is 16 hex characters, like ClusterAdapter's server and
// request ids.
func shRandomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *sharded) close() error {
	s.cancel()
	s.subMu.Lock()
	for slot, sl := range s.slots {
		sl.close()
		delete(s.slots, slot)
	}
	s.chans, s.rooms = map[string]int{}, map[string]bool{}
	s.subMu.Unlock()
	s.wg.Wait()
	return s.rdb.Close()
}

func (s *sharded) mainChannel(nsp string) string { return s.key + "#" + nsp + "#" }

func (s *sharded) responseChannel(nsp, uid string) string { return s.key + "#" + nsp + "#" + uid + "#" }

func (s *sharded) roomChannel(nsp, room string) string { return s.key + "#" + nsp + "#" + room + "#" }

// looksLikeSocketID is Node's test: a string of 20 UTF-16 code units.
func looksLikeSocketID(room string) bool {
	if len(room) < 20 || len(room) > 80 {
		return false
	}
	n := 0
	for _, r := range room {
		n += utf16.RuneLen(r)
	}
	return n == 20
}

// broadcastChannel is where Node publishes a broadcast without ack: its
// room's channel when it targets exactly one room (in dynamic mode, one
// that does not look like a socket id), the namespace channel otherwise.
// Static mode always uses the namespace channel.
func (s *sharded) broadcastChannel(m *sdk.AdapterMessage) string {
	nsp := nspOrRoot(m.Namespace)
	if len(m.Rooms) == 1 {
		switch s.submode {
		case subDynamic:
			if !looksLikeSocketID(m.Rooms[0]) {
				return s.roomChannel(nsp, m.Rooms[0])
			}
		case subDynamicPrivate:
			return s.roomChannel(nsp, m.Rooms[0])
		}
	}
	return s.mainChannel(nsp)
}

// ---- subscriptions

// slotOf is the Redis Cluster slot of a channel (0 outside a cluster, where
// one connection holds every channel).
func (s *sharded) slotOf(channel string) int {
	if !s.cluster {
		return 0
	}
	return clusterSlot(channel)
}

// addChannels subscribes to the channels not yet subscribed (each channel
// counts its reasons). go-redis remembers a subscription even when Redis
// is unreachable and makes it on reconnect, so I/O errors are not returned.
func (s *sharded) addChannels(ctx context.Context, channels []string) {
	s.run()
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	bySlot := map[int][]string{}
	for _, ch := range channels {
		s.chans[ch]++
		if s.chans[ch] == 1 {
			slot := s.slotOf(ch)
			bySlot[slot] = append(bySlot[slot], ch)
		}
	}
	for slot, chs := range bySlot {
		sl := s.slots[slot]
		if sl == nil {
			sl = s.newSlot(slot)
			s.slots[slot] = sl
			sl.subscribe(ctx, chs) // before reading: the connection then goes to the slot's node
			s.wg.Add(1)
			go sl.run()
			continue
		}
		sl.subscribe(ctx, chs)
	}
}

// removeChannels drops one reason for each channel and unsubscribes those
// left without any; a slot connection left empty is closed.
func (s *sharded) removeChannels(ctx context.Context, channels []string) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	bySlot := map[int][]string{}
	for _, ch := range channels {
		n, ok := s.chans[ch]
		if !ok {
			continue
		}
		if n > 1 {
			s.chans[ch] = n - 1
			continue
		}
		delete(s.chans, ch)
		slot := s.slotOf(ch)
		bySlot[slot] = append(bySlot[slot], ch)
	}
	for slot, chs := range bySlot {
		sl := s.slots[slot]
		if sl == nil {
			continue
		}
		if sl.unsubscribe(ctx, chs) == 0 {
			sl.close()
			delete(s.slots, slot)
		}
	}
}

// confirmed reports whether Redis has confirmed our subscription to ch.
func (s *sharded) confirmed(ch string) bool {
	s.subMu.Lock()
	sl := s.slots[s.slotOf(ch)]
	s.subMu.Unlock()
	return sl != nil && sl.isConfirmed(ch)
}

// waitConfirmed waits until Redis has confirmed our subscription to ch.
func (s *sharded) waitConfirmed(ctx context.Context, ch string) error {
	s.subMu.Lock()
	sl := s.slots[s.slotOf(ch)]
	s.subMu.Unlock()
	if sl == nil {
		return fmt.Errorf("not subscribed to %s", ch)
	}
	return sl.waitConfirmed(ctx, ch)
}

// slotDown records a slot connection's health; Status shows the first
// failing one while any is.
func (s *sharded) slotDown(slot int, err error) {
	if s.met == nil {
		return
	}
	s.subMu.Lock()
	if err == nil {
		delete(s.down, slot)
	} else {
		s.down[slot] = err
	}
	var first error
	for _, e := range s.down {
		first = e
		break
	}
	s.subMu.Unlock()
	s.met.setDown("subscription", first)
}

// shSlot is one subscription connection, read by our own loop rather than
// go-redis's Channel(): the loop sees Redis confirm each SSUBSCRIBE (a
// request waits for its response channel), reports the connection's
// health, and replaces a connection whose PING goes unanswered. On a
// cluster each connection holds the channels of one slot only: SSUBSCRIBE
// refuses channels of several slots in one command, and go-redis
// re-subscribes all of a connection's channels in one command after a
// reconnect.
type shSlot struct {
	s    *sharded
	slot int

	mu        sync.Mutex
	ps        *redis.PubSub
	closed    bool
	channels  map[string]struct{}
	confirmed map[string]struct{} // on the current connection
	changed   chan struct{}       // closed and replaced when confirmed grows
}

func (s *sharded) newSlot(slot int) *shSlot {
	return &shSlot{s: s, slot: slot, ps: s.rdb.SSubscribe(context.Background()),
		channels: map[string]struct{}{}, confirmed: map[string]struct{}{}, changed: make(chan struct{})}
}

func (sl *shSlot) subscribe(ctx context.Context, chs []string) {
	sl.mu.Lock()
	for _, ch := range chs {
		sl.channels[ch] = struct{}{}
	}
	ps := sl.ps
	sl.mu.Unlock()
	_ = ps.SSubscribe(ctx, chs...)
}

// unsubscribe returns how many channels the connection keeps.
func (sl *shSlot) unsubscribe(ctx context.Context, chs []string) int {
	sl.mu.Lock()
	for _, ch := range chs {
		delete(sl.channels, ch)
		delete(sl.confirmed, ch)
	}
	ps, left := sl.ps, len(sl.channels)
	sl.mu.Unlock()
	if left > 0 {
		_ = ps.SUnsubscribe(ctx, chs...)
	}
	return left
}

func (sl *shSlot) isConfirmed(ch string) bool {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	_, ok := sl.confirmed[ch]
	return ok
}

func (sl *shSlot) waitConfirmed(ctx context.Context, ch string) error {
	for {
		sl.mu.Lock()
		_, ok := sl.confirmed[ch]
		changed := sl.changed
		sl.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("subscribing to %s: %w", ch, ctx.Err())
		}
	}
}

func (sl *shSlot) confirm(ch string) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if _, wanted := sl.channels[ch]; !wanted {
		return // a late confirmation of something since unsubscribed
	}
	sl.confirmed[ch] = struct{}{}
	close(sl.changed)
	sl.changed = make(chan struct{})
}

// lost forgets the confirmations of a connection that failed (go-redis
// re-subscribes on the next one, and Redis confirms again).
func (sl *shSlot) lost() {
	sl.mu.Lock()
	clear(sl.confirmed)
	sl.mu.Unlock()
}

func (sl *shSlot) close() {
	sl.mu.Lock()
	sl.closed = true
	ps := sl.ps
	sl.mu.Unlock()
	_ = ps.Close()
}

// replace swaps in a new connection with the same channels: after an
// unanswered PING, or when Redis moved the slot to another node (it then
// unsubscribes us; on a cluster the slot map is reloaded first so the new
// connection goes to the new owner).
func (sl *shSlot) replace(reload bool) {
	if cc, ok := sl.s.rdb.(*redis.ClusterClient); ok && reload {
		cc.ReloadState(sl.s.ctx)
	}
	sl.mu.Lock()
	if sl.closed {
		sl.mu.Unlock()
		return
	}
	old := sl.ps
	sl.ps = sl.s.rdb.SSubscribe(context.Background())
	clear(sl.confirmed)
	ps := sl.ps
	chs := make([]string, 0, len(sl.channels))
	for ch := range sl.channels {
		chs = append(chs, ch)
	}
	sl.mu.Unlock()
	_ = old.Close()
	ctx, cancel := context.WithTimeout(sl.s.ctx, shHealthEvery)
	defer cancel()
	if len(chs) > 0 {
		_ = ps.SSubscribe(ctx, chs...)
	}
}

// run reads the connection until it is closed, handing messages to the
// dispatcher in order.
func (sl *shSlot) run() {
	s := sl.s
	defer s.wg.Done()
	defer s.slotDown(sl.slot, nil)
	backoff := backoffMin
	pinged, down := false, false
	for s.ctx.Err() == nil {
		sl.mu.Lock()
		ps, closed := sl.ps, sl.closed
		sl.mu.Unlock()
		if closed {
			return
		}
		msg, err := ps.ReceiveTimeout(s.ctx, shHealthEvery)
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !pinged {
					pinged = true
					_ = ps.Ping(s.ctx) // a write error shows on the next read
					continue
				}
				s.slotDown(sl.slot, fmt.Errorf("no answer to PING within %v", shHealthEvery))
				down = true
				sl.replace(false)
				pinged = false
				continue
			}
			if errors.Is(err, redis.ErrClosed) {
				sl.mu.Lock()
				closed := sl.closed
				sl.mu.Unlock()
				if closed {
					return
				}
			}
			sl.lost()
			s.slotDown(sl.slot, redisCause(err))
			down, pinged = true, false
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
			}
			backoff = min(2*backoff, backoffMax)
			continue
		}
		backoff, pinged = backoffMin, false
		if down {
			s.slotDown(sl.slot, nil)
			down = false
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			switch m.Kind {
			case "ssubscribe":
				sl.confirm(m.Channel)
			case "sunsubscribe":
				// Unasked for (we close rather than leave a slot, and drop
				// a channel from sl.channels before unsubscribing): Redis
				// moved the slot away.
				sl.mu.Lock()
				_, wanted := sl.channels[m.Channel]
				sl.mu.Unlock()
				if wanted {
					sl.replace(true)
				}
			}
		case *redis.Message:
			select {
			case s.in <- m:
			case <-s.ctx.Done():
				return
			}
		}
	}
}

// ---- the core's calls

// flush publishes the batch with SPUBLISH in one pipeline (on a cluster
// go-redis splits it by node).
func (s *sharded) flush(ctx context.Context, batch []sdk.AdapterMessage, skipped func(error)) error {
	pipe := s.rdb.Pipeline()
	for i := range batch {
		m := &batch[i]
		payload, err := s.encodeBroadcast(m, "", 0)
		if err != nil {
			skipped(fmt.Errorf("message %d: %w", i, err))
			continue
		}
		pipe.SPublish(ctx, s.broadcastChannel(m), payload)
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf(`adapter "redis": spublish: %w`, err)
		}
	}
	return nil
}

// subscribe delivers the broadcasts that reach this instance, on the
// namespace channels of the namespaces ServeRequests names (it subscribes
// them; until then only room channels deliver) and on the room channels.
// The latest call receives them.
func (s *sharded) subscribe(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error {
	sk := &shSink{ch: make(chan sdk.AdapterMessage, shInbox), done: make(chan struct{})}
	s.mu.Lock()
	s.sink = sk
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.sink == sk {
			s.sink = nil
		}
		s.mu.Unlock()
		close(sk.done)
	}()
	batch := make([]sdk.AdapterMessage, 0, maxDeliver)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return errors.New(`adapter "redis": closed`)
		case m := <-sk.ch:
			batch = append(batch, m)
		drain:
			for len(batch) < maxDeliver {
				select {
				case m := <-sk.ch:
					batch = append(batch, m)
				default:
					break drain
				}
			}
		}
		if err := deliver(batch); err != nil {
			return err
		}
		batch = make([]sdk.AdapterMessage, 0, maxDeliver)
	}
}

// serveRequests subscribes to the namespace and response channels of
// namespaces (which makes this instance count as one of their servers)
// until ctx ends.
func (s *sharded) serveRequests(ctx context.Context, namespaces []string, handle func(sdk.IncomingRequest)) error {
	h := &shHandler{fn: handle}
	var channels []string
	for _, n := range namespaces {
		n = nspOrRoot(n)
		channels = append(channels, s.mainChannel(n), s.responseChannel(n, s.uid))
	}
	s.mu.Lock()
	s.handle = h
	for _, n := range namespaces {
		s.served = append(s.served, s.mainChannel(nspOrRoot(n)))
	}
	s.mu.Unlock()
	s.addChannels(ctx, channels)
	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	s.mu.Lock()
	if s.handle == h {
		s.handle = nil
	}
	s.mu.Unlock()
	s.removeChannels(context.Background(), channels)
	return ctx.Err()
}

// roomsChanged subscribes to the channels of the rooms this instance now
// holds and unsubscribes from those it no longer holds (dynamic modes).
func (s *sharded) roomsChanged(ctx context.Context, changes []sdk.RoomChange) error {
	if s.submode == subStatic {
		return nil
	}
	// The net effect of the batch, in order: a room created then deleted
	// costs nothing.
	net := map[string]int{}
	var order []string
	for _, c := range changes {
		// In dynamic mode publishers send rooms that look like socket ids
		// on the namespace channel, so their room channel carries nothing.
		if s.submode == subDynamic && looksLikeSocketID(c.Room) {
			continue
		}
		ch := s.roomChannel(nspOrRoot(c.Namespace), c.Room)
		if _, ok := net[ch]; !ok {
			order = append(order, ch)
		}
		if c.Created {
			net[ch] = 1
		} else {
			net[ch] = -1
		}
	}
	var add, del []string
	s.subMu.Lock()
	for _, ch := range order {
		has := s.rooms[ch]
		if net[ch] > 0 && !has {
			add = append(add, ch)
			s.rooms[ch] = true
		} else if net[ch] < 0 && has {
			del = append(del, ch)
			delete(s.rooms, ch)
		}
	}
	s.subMu.Unlock()
	s.removeChannels(ctx, del)
	s.addChannels(ctx, add)
	return nil
}

// request sends req on the namespace channel and gathers the answers of
// the other servers (PUBSUB SHARDNUMSUB of that channel, minus us).
func (s *sharded) request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error) {
	if req.Type == sdk.RequestAllRooms {
		return sdk.RequestResult{}, fmt.Errorf(`adapter "redis" (sharded): all rooms: %w (Node's ClusterAdapter has no allRooms)`, sdk.ErrUnsupported)
	}
	nsp := nspOrRoot(req.Namespace)
	main := s.mainChannel(nsp)
	requestID := shRandomID()
	payload, respType, err := s.encodeRequest(nsp, requestID, &req)
	if err != nil {
		return sdk.RequestResult{}, err
	}
	if respType == 0 {
		if err := s.rdb.SPublish(ctx, main, payload).Err(); err != nil {
			return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": spublish: %w`, err)
		}
		return sdk.RequestResult{}, nil
	}

	timeout := req.Timeout
	if timeout <= 0 {
		timeout = s.timeout
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// We count ourselves among the servers once Redis has our subscription
	// to the namespace channel: wait for it if it was asked for.
	s.subMu.Lock()
	self := s.chans[main] > 0
	s.subMu.Unlock()
	if self && !s.confirmed(main) {
		if err := s.waitConfirmed(tctx, main); err != nil {
			return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": %w`, err)
		}
	}
	n, err := s.serverCount(tctx, main)
	if err != nil {
		return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": server count: %w`, err)
	}
	if self {
		n-- // ourselves
	}
	if n <= 0 {
		return sdk.RequestResult{}, nil
	}
	// Answers come on our response channel: listen there (kept for later
	// requests) even for a namespace we do not serve, and not only asked
	// for but confirmed before the request goes out.
	resp := s.responseChannel(nsp, s.uid)
	if !s.confirmed(resp) {
		s.subMu.Lock()
		have := s.chans[resp] > 0
		s.subMu.Unlock()
		if !have {
			s.addChannels(tctx, []string{resp})
		}
		if err := s.waitConfirmed(tctx, resp); err != nil {
			return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": %w`, err)
		}
	}
	p := &shPending{typ: respType, ch: make(chan sdk.ClusterResponse, shMaxAnswers)}
	s.mu.Lock()
	s.pending[requestID] = p
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, requestID)
		s.mu.Unlock()
	}()
	if err := s.rdb.SPublish(tctx, main, payload).Err(); err != nil {
		return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": spublish: %w`, err)
	}
	res := sdk.RequestResult{Expected: n}
	acksWanted, acks := 0, 0
	for res.Answered < n || acks < acksWanted {
		select {
		case r := <-p.ch:
			switch {
			case req.Type != sdk.RequestBroadcastAck:
				res.Answered++
			case r.Count:
				res.Answered++
				acksWanted += r.ClientCount
			default:
				acks++
			}
			answer(r)
		case <-tctx.Done():
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			return res, nil // the timeout: Answered < Expected (or acks missing) says it
		}
	}
	return res, nil
}

// subscribers is how many servers hold the namespace channels this
// instance serves (SHARDNUMSUB, summed): the outgoing queue compares it
// before and after an outage, to hold its backlog until they are back.
func (s *sharded) subscribers(ctx context.Context) (int64, error) {
	s.mu.Lock()
	channels := append([]string(nil), s.served...)
	s.mu.Unlock()
	var total int64
	for _, ch := range channels {
		n, err := s.serverCount(ctx, ch)
		if err != nil {
			return 0, err
		}
		total += int64(n)
	}
	return total, nil
}

// serverCount is PUBSUB SHARDNUMSUB of the channel; on a cluster a shard
// channel's subscribers are counted by the node they subscribed to, so the
// masters' counts are summed (as Node does).
func (s *sharded) serverCount(ctx context.Context, channel string) (int, error) {
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		total := 0
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			m, err := c.PubSubShardNumSub(ctx, channel).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			total += int(m[channel])
			mu.Unlock()
			return nil
		})
		return total, err
	}
	m, err := s.rdb.PubSubShardNumSub(ctx, channel).Result()
	return int(m[channel]), err
}

// ---- receiving

// dispatch routes every received message: broadcasts to Subscribe,
// requests to ServeRequests' handler, answers to the waiting Request.
func (s *sharded) dispatch() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case rm := <-s.in:
			s.route(rm)
		}
	}
}

func (s *sharded) route(rm *redis.Message) {
	w, err := shDecode([]byte(rm.Payload))
	if err != nil || w.UID == s.uid {
		return
	}
	nsp := w.Nsp
	if nsp == "" {
		nsp = "/"
	}
	// The namespace of the channel must be the message's (ClusterAdapter
	// drops messages of another namespace).
	if !strings.HasPrefix(rm.Channel, s.key+"#"+nsp+"#") {
		return
	}
	switch w.Type {
	case shBroadcast:
		packetData, err := shPacketData(w.Data.Packet)
		if err != nil {
			return
		}
		if w.Data.RequestID == nil {
			s.toSink(sdk.AdapterMessage{Namespace: nsp, Rooms: w.Data.Opts.Rooms, Except: w.Data.Opts.Except,
				Data: packetData, Attachments: w.attachments, Volatile: w.Data.Opts.Flags.Volatile})
			return
		}
		in := sdk.IncomingRequest{ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestBroadcastAck, Namespace: nsp,
			Rooms: w.Data.Opts.Rooms, Except: w.Data.Opts.Except, Data: packetData, Attachments: w.attachments,
			Timeout: w.Data.Opts.Flags.Timeout}}
		s.toHandler(&in, w, nsp)
	case shSocketsJoin, shSocketsLeave:
		typ := sdk.RequestSocketsJoin
		if w.Type == shSocketsLeave {
			typ = sdk.RequestSocketsLeave
		}
		s.toHandler(&sdk.IncomingRequest{ClusterRequest: sdk.ClusterRequest{Type: typ, Namespace: nsp,
			Rooms: w.Data.Opts.Rooms, Except: w.Data.Opts.Except, Targets: w.Data.Rooms}}, w, nsp)
	case shDisconnect:
		s.toHandler(&sdk.IncomingRequest{ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestDisconnectSockets, Namespace: nsp,
			Rooms: w.Data.Opts.Rooms, Except: w.Data.Opts.Except, Close: w.Data.Close}}, w, nsp)
	case shFetchSockets:
		if w.Data.RequestID == nil {
			return
		}
		s.toHandler(&sdk.IncomingRequest{ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: nsp,
			Rooms: w.Data.Opts.Rooms, Except: w.Data.Opts.Except, Timeout: w.Data.Opts.Flags.Timeout}}, w, nsp)
	case shServerSideEmit:
		if !shIsArray(w.Data.Packet) {
			return
		}
		s.toHandler(&sdk.IncomingRequest{ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Namespace: nsp,
			Data: w.Data.Packet, Attachments: w.attachments, WantAck: w.Data.RequestID != nil}}, w, nsp)
	case shFetchResponse, shSSEResponse, shClientCount, shBroadcastAck:
		s.toPending(w)
	}
	// Heartbeats and ADAPTER_CLOSE: ClusterAdapterWithHeartbeat's, not the
	// sharded adapter's; nothing to do.
}

func (s *sharded) toSink(m sdk.AdapterMessage) {
	s.mu.Lock()
	sk := s.sink
	s.mu.Unlock()
	if sk == nil {
		return // nobody subscribed: nothing to deliver to
	}
	// Blocking here holds back the readers (and go-redis's buffers) while
	// the core is slow, rather than dropping broadcasts.
	select {
	case sk.ch <- m:
	case <-sk.done:
	case <-s.ctx.Done():
	}
}

// toHandler hands a request to ServeRequests' handler, with a Respond that
// publishes to the requester's response channel when the type answers.
func (s *sharded) toHandler(in *sdk.IncomingRequest, w *shWire, nsp string) {
	s.mu.Lock()
	h := s.handle
	s.mu.Unlock()
	if h == nil {
		return
	}
	if in.Type.Answered(in.WantAck) && w.Data.RequestID != nil {
		requestID := *w.Data.RequestID
		wait := in.Timeout
		if wait <= 0 {
			wait = s.timeout
		}
		in.Respond = s.responder(in.Type, nsp, w.UID, requestID, time.Now().Add(wait))
	}
	h.fn(*in)
}

// responder returns the Respond of one request: it encodes the answer and
// queues it for the reply publisher, never blocking; late answers, answers
// beyond what the type allows and answers the queue has no room for are
// dropped.
func (s *sharded) responder(typ sdk.RequestType, nsp, requester, requestID string, deadline time.Time) func(sdk.ClusterResponse) {
	var mu sync.Mutex
	sent := 0
	channel := s.responseChannel(nsp, requester)
	return func(r sdk.ClusterResponse) {
		if time.Now().After(deadline) {
			s.count(func(m *metrics) { m.respLate.Add(1) })
			return
		}
		mu.Lock()
		if typ != sdk.RequestBroadcastAck && sent > 0 {
			mu.Unlock()
			return // one answer per server
		}
		sent++
		mu.Unlock()
		payload, err := s.encodeResponse(typ, nsp, requestID, &r)
		if err != nil {
			return
		}
		select {
		case s.out <- shReply{channel: channel, payload: payload, deadline: deadline}:
		default:
			s.count(func(m *metrics) { m.respFull.Add(1) })
		}
	}
}

// publishReplies sends our answers, whatever is queued in one pipeline.
func (s *sharded) publishReplies() {
	defer s.wg.Done()
	for {
		var batch []shReply
		select {
		case <-s.ctx.Done():
			return
		case r := <-s.out:
			batch = append(batch, r)
		}
	drain:
		for len(batch) < maxDeliver {
			select {
			case r := <-s.out:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		pipe := s.rdb.Pipeline()
		now := time.Now()
		for _, r := range batch {
			if now.Before(r.deadline) {
				pipe.SPublish(s.ctx, r.channel, r.payload)
			} else {
				s.count(func(m *metrics) { m.respLate.Add(1) })
			}
		}
		if pipe.Len() > 0 {
			ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
			_, _ = pipe.Exec(ctx) // the requester times out; nothing better to do
			cancel()
		}
	}
}

func (s *sharded) toPending(w *shWire) {
	if w.Data.RequestID == nil {
		return
	}
	s.mu.Lock()
	p := s.pending[*w.Data.RequestID]
	s.mu.Unlock()
	if p == nil {
		return
	}
	var r sdk.ClusterResponse
	switch w.Type {
	case shFetchResponse:
		if p.typ != shFetchResponse {
			return
		}
		socks, err := shSockets(w.Data.Sockets, w.socketAttachments)
		if err != nil {
			return
		}
		r.Sockets = socks
	case shSSEResponse:
		if p.typ != shSSEResponse {
			return
		}
		r.Ack, r.AckAttachments = shAckValue(w.Data.Packet), w.attachments
	case shClientCount:
		if p.typ != shBroadcastAck {
			return
		}
		r.Count, r.ClientCount = true, w.Data.ClientCount
	case shBroadcastAck:
		if p.typ != shBroadcastAck {
			return
		}
		r.Ack, r.AckAttachments = shAckValue(w.Data.Packet), w.attachments
	}
	select {
	case p.ch <- r:
	default: // the caller is not keeping up: bounded, dropped
		s.count(func(m *metrics) { m.answerDropped.Add(1) })
	}
}

func shAckValue(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return []byte("null")
	}
	return raw
}

func shIsArray(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '['
}

// shPacketData is packet.data of a broadcast's {type:2, data:[...]}.
func shPacketData(packet json.RawMessage) ([]byte, error) {
	var p struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(packet, &p); err != nil {
		return nil, err
	}
	if !shIsArray(p.Data) {
		return nil, errors.New("packet.data is not an array")
	}
	return p.Data, nil
}

// shSockets parses the sockets of a FETCH_SOCKETS_RESPONSE. Binary values
// in a socket's data (msgpack bin) become what JSON.stringify makes of a
// Buffer, {"type":"Buffer","data":[...]}: RemoteSocket data is plain JSON.
func shSockets(raw json.RawMessage, attachments [][]byte) ([]sdk.RemoteSocket, error) {
	for i, a := range attachments {
		ph := `{"_placeholder":true,"num":` + strconv.Itoa(i) + `}`
		var b strings.Builder
		b.WriteString(`{"type":"Buffer","data":[`)
		for j, c := range a {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(int(c)))
		}
		b.WriteString("]}")
		raw = bytes.Replace(raw, []byte(ph), []byte(b.String()), 1)
	}
	var in []struct {
		ID        string          `json:"id"`
		Handshake json.RawMessage `json:"handshake"`
		Rooms     shStrings       `json:"rooms"`
		Data      json.RawMessage `json:"data"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, err
		}
	}
	out := make([]sdk.RemoteSocket, 0, len(in))
	for _, x := range in {
		rs := sdk.RemoteSocket{ID: x.ID, Rooms: []string(x.Rooms), Data: x.Data, Handshake: x.Handshake}
		if len(rs.Data) == 0 {
			rs.Data = []byte("null")
		}
		if len(rs.Handshake) == 0 {
			rs.Handshake = []byte("{}")
		}
		out = append(out, rs)
	}
	return out, nil
}

// ---- wire decoding

// shWire is a received ClusterAdapter message or response, JSON or msgpack.
type shWire struct {
	Type int    `json:"type"`
	UID  string `json:"uid"`
	Nsp  string `json:"nsp"`
	Data struct {
		Packet    json.RawMessage `json:"packet"`
		RequestID *string         `json:"requestId"`
		Opts      struct {
			Rooms  shStrings `json:"rooms"`
			Except shStrings `json:"except"`
			Flags  shFlags   `json:"flags"`
		} `json:"opts"`
		Rooms       shStrings       `json:"rooms"`
		Close       bool            `json:"close"`
		Sockets     json.RawMessage `json:"sockets"`
		ClientCount int             `json:"clientCount"`
	} `json:"data"`
	// binary values of Packet and Sockets (msgpack only), in placeholder
	// order
	attachments       [][]byte
	socketAttachments [][]byte
}

// shStrings is a list of strings that also takes one string, numbers and
// booleans (rooms are whatever JavaScript values Node was given).
type shStrings []string

func (l *shStrings) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	var items []any
	switch t := v.(type) {
	case []any:
		items = t
	case nil:
		*l = nil
		return nil
	default:
		items = []any{t}
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		switch x := it.(type) {
		case string:
			out = append(out, x)
		case nil:
		default:
			out = append(out, fmt.Sprint(x))
		}
	}
	*l = out
	return nil
}

// shFlags are the broadcast flags we use: volatile, and the ack timeout (ms
// on the wire).
type shFlags struct {
	Volatile bool
	Timeout  time.Duration
}

func (f *shFlags) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil // not an object: no flags
	}
	f.Volatile = m["volatile"] == true
	if n, ok := m["timeout"].(float64); ok && n > 0 {
		f.Timeout = time.Duration(n * float64(time.Millisecond))
	}
	return nil
}

// shDecode parses a message: JSON when it starts with '{', as Node sniffs,
// msgpack otherwise.
func shDecode(b []byte) (*shWire, error) {
	var w shWire
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &w); err != nil {
			return nil, err
		}
	} else if err := shDecodeMsgpack(b, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

func shDecodeMsgpack(b []byte, w *shWire) error {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	return decodeMap(d, func(k string) error {
		switch k {
		case "type":
			v, err := d.DecodeInt64()
			w.Type = int(v)
			return err
		case "uid":
			v, err := decodeStringish(d)
			w.UID = v
			return err
		case "nsp":
			v, err := decodeStringish(d)
			w.Nsp = v
			return err
		case "data":
			return decodeMap(d, func(k string) error { return shDecodeData(d, w, k) })
		}
		return d.Skip()
	})
}

func shDecodeData(d *msgpack.Decoder, w *shWire, k string) error {
	var err error
	switch k {
	case "packet":
		r := &reader{d: d}
		w.Data.Packet, err = r.value(nil)
		w.attachments = r.attachments
	case "sockets":
		r := &reader{d: d}
		w.Data.Sockets, err = r.value(nil)
		w.socketAttachments = r.attachments
	case "requestId":
		var v string
		v, err = decodeStringish(d)
		w.Data.RequestID = &v
	case "rooms":
		w.Data.Rooms, err = decodeStrings(d)
	case "close":
		var v any
		v, err = d.DecodeInterface()
		w.Data.Close = v == true
	case "clientCount":
		var v int64
		v, err = d.DecodeInt64()
		w.Data.ClientCount = int(v)
	case "opts":
		err = decodeMap(d, func(k string) error {
			var err error
			switch k {
			case "rooms":
				w.Data.Opts.Rooms, err = decodeStrings(d)
			case "except":
				w.Data.Opts.Except, err = decodeStrings(d)
			case "flags":
				err = decodeMap(d, func(k string) error {
					v, err := d.DecodeInterface()
					switch k {
					case "volatile":
						w.Data.Opts.Flags.Volatile = v == true
					case "timeout":
						if ms := shNumber(v); ms > 0 {
							w.Data.Opts.Flags.Timeout = time.Duration(ms * float64(time.Millisecond))
						}
					}
					return err
				})
			default:
				err = d.Skip()
			}
			return err
		})
	default:
		err = d.Skip()
	}
	return err
}

func shNumber(v any) float64 {
	switch n := v.(type) {
	case int8:
		return float64(n)
	case int16:
		return float64(n)
	case int32:
		return float64(n)
	case int64:
		return float64(n)
	case uint8:
		return float64(n)
	case uint16:
		return float64(n)
	case uint32:
		return float64(n)
	case uint64:
		return float64(n)
	case float32:
		return float64(n)
	case float64:
		return n
	}
	return 0
}

// ---- wire encoding

// Outgoing messages are built as trees of *object (ordered keys), string,
// int64, bool, []string and shRaw (a JSON value, placeholders included),
// then written as JSON or, when they carry binary, as msgpack.
type shRaw []byte

func shObj(kv ...any) *object {
	o := &object{}
	for i := 0; i+1 < len(kv); i += 2 {
		o.keys = append(o.keys, kv[i].(string))
		o.vals = append(o.vals, kv[i+1])
	}
	return o
}

func shOpts(rooms, except []string, volatile bool, timeout time.Duration) *object {
	flags := shObj()
	if volatile {
		flags = shObj("volatile", true)
	}
	if timeout > 0 {
		flags = shObj("timeout", int64(timeout/time.Millisecond))
	}
	return shObj("rooms", shNonNil(rooms), "except", shNonNil(except), "flags", flags)
}

func shNonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// shEncode renders {type, data, uid, nsp}: msgpack when attachments are
// given (the types that may carry binary and do), JSON otherwise.
func (s *sharded) shEncode(typ int, nsp string, data *object, attachments [][]byte) ([]byte, error) {
	msg := shObj("type", int64(typ), "data", data, "uid", s.uid, "nsp", nsp)
	if len(attachments) == 0 {
		return shAppendJSON(make([]byte, 0, 256), msg)
	}
	var buf bytes.Buffer
	w := &writer{e: msgpack.NewEncoder(&buf), attachments: attachments}
	shWriteMsgpack(w, msg)
	if w.err != nil {
		return nil, w.err
	}
	return buf.Bytes(), nil
}

func shAppendJSON(buf []byte, v any) ([]byte, error) {
	var err error
	switch t := v.(type) {
	case *object:
		buf = append(buf, '{')
		for i, k := range t.keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = shAppendString(buf, k)
			buf = append(buf, ':')
			if buf, err = shAppendJSON(buf, t.vals[i]); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	case string:
		return shAppendString(buf, t), nil
	case int64:
		return strconv.AppendInt(buf, t, 10), nil
	case bool:
		return strconv.AppendBool(buf, t), nil
	case []string:
		buf = append(buf, '[')
		for i, x := range t {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = shAppendString(buf, x)
		}
		return append(buf, ']'), nil
	case shList:
		buf = append(buf, '[')
		for i, x := range t {
			if i > 0 {
				buf = append(buf, ',')
			}
			if buf, err = shAppendJSON(buf, x); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case shRaw:
		if !json.Valid(t) {
			return nil, errors.New("invalid JSON")
		}
		return append(buf, t...), nil
	}
	return nil, fmt.Errorf("unexpected %T", v)
}

// shAppendString quotes s as JSON (the common plain case without an
// encoder).
func shAppendString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return appendJSONString(buf, s)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

func shWriteMsgpack(w *writer, v any) {
	switch t := v.(type) {
	case *object:
		w.mapLen(len(t.keys))
		for i, k := range t.keys {
			w.str(k)
			shWriteMsgpack(w, t.vals[i])
		}
	case string:
		w.str(t)
	case int64:
		w.err1(w.e.EncodeInt(t))
	case bool:
		w.err1(w.e.EncodeBool(t))
	case []string:
		w.strings(t)
	case shList:
		w.arrayLen(len(t))
		for _, x := range t {
			shWriteMsgpack(w, x)
		}
	case shRaw:
		parsed, err := parseJSON(t)
		if err != nil {
			w.err1(err)
			return
		}
		w.value(parsed)
	default:
		w.err1(fmt.Errorf("unexpected %T", v))
	}
}

// encodeBroadcast renders a BROADCAST: without requestID a plain one, with
// it one whose clients acknowledge within timeout.
func (s *sharded) encodeBroadcast(m *sdk.AdapterMessage, requestID string, timeout time.Duration) ([]byte, error) {
	if !shIsArray(m.Data) {
		return nil, errors.New("message data is not a JSON array")
	}
	packet := shObj("type", int64(packetEvent), "data", shRaw(m.Data))
	opts := shOpts(m.Rooms, m.Except, m.Volatile, timeout)
	data := shObj("packet", packet, "opts", opts)
	if requestID != "" {
		data = shObj("packet", packet, "requestId", requestID, "opts", opts)
	}
	return s.shEncode(shBroadcast, nspOrRoot(m.Namespace), data, m.Attachments)
}

// encodeRequest renders a request; respType is the response type that
// answers it, 0 when none does.
func (s *sharded) encodeRequest(nsp, requestID string, req *sdk.ClusterRequest) (payload []byte, respType int, err error) {
	opts := func() *object { return shOpts(req.Rooms, req.Except, false, 0) }
	switch req.Type {
	case sdk.RequestFetchSockets:
		payload, err = s.shEncode(shFetchSockets, nsp, shObj("opts", opts(), "requestId", requestID), nil)
		respType = shFetchResponse
	case sdk.RequestSocketsJoin, sdk.RequestSocketsLeave:
		typ := shSocketsJoin
		if req.Type == sdk.RequestSocketsLeave {
			typ = shSocketsLeave
		}
		payload, err = s.shEncode(typ, nsp, shObj("opts", opts(), "rooms", shNonNil(req.Targets)), nil)
	case sdk.RequestDisconnectSockets:
		payload, err = s.shEncode(shDisconnect, nsp, shObj("opts", opts(), "close", req.Close), nil)
	case sdk.RequestServerSideEmit:
		if !shIsArray(req.Data) {
			return nil, 0, errors.New(`adapter "redis": server-side emit data is not a JSON array`)
		}
		data := shObj("packet", shRaw(req.Data))
		if req.WantAck {
			data = shObj("requestId", requestID, "packet", shRaw(req.Data))
			respType = shSSEResponse
		}
		payload, err = s.shEncode(shServerSideEmit, nsp, data, req.Attachments)
	case sdk.RequestBroadcastAck:
		timeout := req.Timeout
		if timeout <= 0 {
			timeout = s.timeout
		}
		req.Timeout = timeout
		payload, err = s.encodeBroadcast(&sdk.AdapterMessage{Namespace: nsp, Rooms: req.Rooms, Except: req.Except,
			Data: req.Data, Attachments: req.Attachments}, requestID, timeout)
		respType = shBroadcastAck
	default:
		return nil, 0, fmt.Errorf(`adapter "redis": request type %v: %w`, req.Type, sdk.ErrUnsupported)
	}
	if err != nil {
		return nil, 0, fmt.Errorf(`adapter "redis": %v request: %w`, req.Type, err)
	}
	return payload, respType, nil
}

// encodeResponse renders our answer to a request of type typ.
func (s *sharded) encodeResponse(typ sdk.RequestType, nsp, requestID string, r *sdk.ClusterResponse) ([]byte, error) {
	ack := func() shRaw {
		if len(r.Ack) == 0 {
			return shRaw("null")
		}
		return shRaw(r.Ack)
	}
	switch typ {
	case sdk.RequestFetchSockets:
		socks := make([]any, 0, len(r.Sockets))
		for _, x := range r.Sockets {
			hs, data := shRaw(x.Handshake), shRaw(x.Data)
			if len(hs) == 0 {
				hs = shRaw("{}")
			}
			if len(data) == 0 {
				data = shRaw("null")
			}
			socks = append(socks, shObj("id", x.ID, "handshake", hs, "rooms", shNonNil(x.Rooms), "data", data))
		}
		return s.shEncode(shFetchResponse, nsp, shObj("requestId", requestID, "sockets", shList(socks)), nil)
	case sdk.RequestServerSideEmit:
		return s.shEncode(shSSEResponse, nsp, shObj("requestId", requestID, "packet", ack()), r.AckAttachments)
	case sdk.RequestBroadcastAck:
		if r.Count {
			return s.shEncode(shClientCount, nsp, shObj("requestId", requestID, "clientCount", int64(r.ClientCount)), nil)
		}
		return s.shEncode(shBroadcastAck, nsp, shObj("requestId", requestID, "packet", ack()), r.AckAttachments)
	}
	return nil, fmt.Errorf("no answer to %v", typ)
}

// shList is a JSON array of tree values.
type shList []any

// clusterSlot is the Redis Cluster slot of a key (here a shard channel):
// CRC16 (XMODEM) of the key, or of its hash tag (the first non-empty
// {...}), modulo 16384.
func clusterSlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
