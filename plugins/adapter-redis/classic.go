package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/sdk"
)

// classic is the mode of Node's createAdapter: broadcasts on
// PUBLISH/PSUBSCRIBE channels, requests and responses on their own
// SUBSCRIBE channels (requests.go has their wire format).
type classic struct {
	rdb *redis.Client
	key string
	uid string
	rt  *runtime

	ctx    context.Context // ends on close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	startOnce sync.Once
	rsub      *subConn     // request and response channels, once started
	answers   chan outResp // our answers to other instances' requests

	noClientType atomic.Bool // CLIENT LIST TYPE was refused: subscribers reads the whole list

	subMu sync.Mutex // request channels: a decision to (un)subscribe and sending it

	mu       sync.Mutex
	chans    map[string]chanRole  // subscribed request/response channel → what it is
	servers  map[string][]*server // namespace → ServeRequests calls serving it (the last one gets requests)
	respSubs map[string]bool      // namespaces whose response channels are subscribed
	pending  map[string]*pending  // our requests awaiting answers, by request id
}

type chanRole struct {
	nsp     string
	request bool
}

func newClassic(rdb *redis.Client, key, uid string, rt *runtime) *classic {
	ctx, cancel := context.WithCancel(context.Background())
	return &classic{rdb: rdb, key: key, uid: uid, rt: rt, ctx: ctx, cancel: cancel,
		answers: make(chan outResp, maxQueuedAnswers),
		chans:   map[string]chanRole{}, servers: map[string][]*server{},
		respSubs: map[string]bool{}, pending: map[string]*pending{}}
}

// subscribers is the number of clients holding a pattern subscription on
// Redis: each server of the classic format (ours, Node's) holds one,
// <key>#<nsp>#*. It is read from CLIENT LIST, because PUBSUB NUMPAT counts
// distinct patterns (two servers on the same pattern count once, so the
// queue would stop waiting when the first one is back). Other
// applications' pattern subscribers count too, which is fine for the
// queue's before/after comparison. It asks for pub/sub clients only
// (CLIENT LIST TYPE pubsub, Redis 5): the sample runs on the publish path,
// and a shared Redis may hold many more clients than subscribers. Where
// TYPE is refused, the whole list; where CLIENT is not allowed (some
// managed Redis), NUMPAT is the fallback.
func (c *classic) subscribers(ctx context.Context) (int64, error) {
	if !c.noClientType.Load() {
		list, err := c.rdb.Do(ctx, "client", "list", "type", "pubsub").Text()
		if err == nil {
			return countPatternClients(list), nil
		}
		var reply redis.Error
		if !errors.As(err, &reply) {
			return 0, err // Redis unreachable: the fallbacks would fail too
		}
		c.noClientType.Store(true)
	}
	list, err := c.rdb.ClientList(ctx).Result()
	if err != nil {
		return c.rdb.PubSubNumPat(ctx).Result()
	}
	return countPatternClients(list), nil
}

// countPatternClients counts the lines of CLIENT LIST output with psub > 0.
func countPatternClients(list string) int64 {
	var n int64
	for _, line := range strings.Split(list, "\n") {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "psub="); ok {
				if v != "0" && v != "" {
					n++
				}
				break
			}
		}
	}
	return n
}

func (c *classic) close() error {
	c.cancel()
	c.wg.Wait()
	return c.rdb.Close()
}

// channel is where the Node adapter publishes a broadcast: the room channel
// for exactly one room, the namespace channel otherwise.
func channel(key string, m *sdk.AdapterMessage) string {
	ch := key + "#" + nspOrRoot(m.Namespace) + "#"
	if len(m.Rooms) == 1 {
		ch += m.Rooms[0] + "#"
	}
	return ch
}

// flush sends the batch in one pipeline (one round trip).
func (c *classic) flush(ctx context.Context, batch []sdk.AdapterMessage, skipped func(error)) error {
	pipe := c.rdb.Pipeline()
	for i := range batch {
		m := &batch[i]
		payload, err := encodeMessage(c.uid, m)
		if err != nil {
			skipped(fmt.Errorf("message %d: %w", i, err))
			continue
		}
		pipe.Publish(ctx, channel(c.key, m), payload)
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return err // the shell says what failed
		}
	}
	return nil
}

// subscribe listens on <key>#* (every namespace and room channel). go-redis
// reconnects and re-subscribes by itself, so this only returns when ctx
// ends, the mode closes, or deliver fails.
func (c *classic) subscribe(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()
	key, uid := c.key, c.uid
	ch := make(chan *redis.Message, 4*maxDeliver)
	sub := newSubConn(c.rdb, "subscription", c.rt.met, func(m *redis.Message) {
		select { // a slow core holds back the reads: Redis buffers, then drops the connection
		case ch <- m:
		case <-ctx.Done():
		}
	})
	_ = sub.psubscribe(ctx, globEscape(key)+"#*") // when Redis is down, run subscribes once it is back
	done := make(chan struct{})
	go func() { defer close(done); sub.run(ctx) }()
	defer func() { cancel(); <-done }()
	prefix := key + "#"
	batch := make([]sdk.AdapterMessage, 0, maxDeliver)
	add := func(rm *redis.Message) {
		if m, ok := accept(prefix, uid, rm); ok {
			batch = append(batch, m)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case rm := <-ch:
			add(rm)
		drain:
			for len(batch) < maxDeliver {
				select {
				case rm := <-ch:
					add(rm)
				default:
					break drain
				}
			}
		}
		if len(batch) > 0 {
			if err := deliver(batch); err != nil {
				return err
			}
			batch = make([]sdk.AdapterMessage, 0, maxDeliver)
		}
	}
}

// accept decodes one Redis message and applies the Node adapter's receiver
// rules: drop our own messages and those whose channel does not match the
// packet's namespace. (The "room unknown locally" rule is left to the core:
// a broadcast to a room with no local member reaches nobody.)
func accept(prefix, uid string, rm *redis.Message) (sdk.AdapterMessage, bool) {
	if !strings.HasPrefix(rm.Channel, prefix) {
		return sdk.AdapterMessage{}, false
	}
	d, err := decodeMessageFrom([]byte(rm.Payload), uid)
	if err != nil || (d.typ != packetEvent && d.typ != 5) {
		return sdk.AdapterMessage{}, false
	}
	if rest := rm.Channel[len(prefix):]; !strings.HasPrefix(rest, d.msg.Namespace) || len(rest) == len(d.msg.Namespace) || rest[len(d.msg.Namespace)] != '#' {
		return sdk.AdapterMessage{}, false
	}
	return d.msg, true
}

// globEscape quotes the glob characters of a PSUBSCRIBE pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (c *classic) roomsChanged(context.Context, []sdk.RoomChange) error { return nil }
