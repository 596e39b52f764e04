package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

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
	// plain: PUBLISH/SUBSCRIBE/NUMSUB rather than their sharded forms (the
	// streams mode's pub/sub, as Node's streams adapter without
	// useShardedPubSub).
	plain bool
	// msgpackOnly: every message is msgpack (@msgpack/msgpack), never
	// JSON: the streams adapter's pub/sub decodes nothing else.
	msgpackOnly bool
	timeout     time.Duration // requests_timeout, from the shell (attach)
	met         *metrics      // the shell's, or nil

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

// broadcastChannel is where Node publishes a broadcast without ack: its
// room's channel when it targets exactly one room (in dynamic mode, one
// that does not look like a socket id), the namespace channel otherwise.
// Static mode always uses the namespace channel.
func (s *sharded) broadcastChannel(m *sdk.AdapterMessage) string {
	nsp := nspOrRoot(m.Namespace)
	if len(m.Rooms) == 1 {
		switch s.submode {
		case subDynamic:
			if !sdk.LooksLikeSocketID(m.Rooms[0]) {
				return s.roomChannel(nsp, m.Rooms[0])
			}
		case subDynamicPrivate:
			return s.roomChannel(nsp, m.Rooms[0])
		}
	}
	return s.mainChannel(nsp)
}

// publish sends payload on channel through c (the client or a pipeline):
// PUBLISH in plain mode, SPUBLISH otherwise.
func (s *sharded) publish(ctx context.Context, c redis.Cmdable, channel string, payload []byte) *redis.IntCmd {
	if s.plain {
		return c.Publish(ctx, channel, payload)
	}
	return c.SPublish(ctx, channel, payload)
}

// newPubSub is a subscription connection of the mode's kind.
func (s *sharded) newPubSub() *redis.PubSub {
	if s.plain {
		return s.rdb.Subscribe(context.Background())
	}
	return s.rdb.SSubscribe(context.Background())
}

func (s *sharded) psSubscribe(ctx context.Context, ps *redis.PubSub, chs []string) error {
	if s.plain {
		return ps.Subscribe(ctx, chs...)
	}
	return ps.SSubscribe(ctx, chs...)
}

func (s *sharded) psUnsubscribe(ctx context.Context, ps *redis.PubSub, chs []string) error {
	if s.plain {
		return ps.Unsubscribe(ctx, chs...)
	}
	return ps.SUnsubscribe(ctx, chs...)
}
