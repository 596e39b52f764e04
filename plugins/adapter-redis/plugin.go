package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/sdk"
)

// mode is one wire format over Redis: classic (PUBLISH/PSUBSCRIBE, Node's
// createAdapter) or sharded (SPUBLISH/SSUBSCRIBE, createShardedAdapter).
// The plugin shell around it owns the config, the outgoing queue, the
// metrics and the status.
type mode interface {
	// flush publishes one batch in one round trip. An error means Redis did
	// not take it (the shell retries the batch); messages that cannot be
	// encoded are skipped and reported through skipped, not an error.
	// After an error the shell calls it again with the same batch (the
	// same slice) until it returns nil or the shell stops.
	flush(ctx context.Context, batch []sdk.AdapterMessage, skipped func(error)) error
	// subscribe runs until ctx ends, delivering broadcasts from other
	// instances in batches; it survives Redis restarts.
	subscribe(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error
	request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error)
	serveRequests(ctx context.Context, namespaces []string, handle func(sdk.IncomingRequest)) error
	roomsChanged(ctx context.Context, changes []sdk.RoomChange) error
	close() error
}

// A mode may also implement attach(*runtime) to get the shell's metrics
// (a go-redis Hook to add to its clients, and setDown for its subscription's
// health) and the request settings; the shell calls it once, right after
// construction, before any other method.
type attacher interface{ attach(*runtime) }

// runtime is what the shell shares with the mode it runs.
type runtime struct {
	met             *metrics
	requestsTimeout time.Duration // wait for answers when a request has no Timeout of its own
}

// maxDeliver is the most messages handed to the core in one batch.
const maxDeliver = 256

// Defaults and bounds of the config.
const (
	defaultQueue           = 10000
	defaultRequestsTimeout = 5 * time.Second
	closeFlushBound        = 2 * time.Second // on close, how long queued messages may take to go out
)

type plugin struct {
	mu  sync.Mutex
	m   mode
	q   *outQueue
	met *metrics // kept across a re-Configure: counters only go up
	// recovery is the last EnableRecovery's config, applied again to the
	// mode a re-Configure makes (nil until then).
	recovery *sdk.RecoveryConfig
}

// recoverer is a mode that backs connection state recovery (streams).
type recoverer interface {
	enableRecovery(context.Context, sdk.RecoveryConfig) error
	saveSessions(context.Context, []sdk.SessionChange) error
	restoreSession(ctx context.Context, namespace, pid, offset string) (*sdk.RestoredSession, error)
}

var (
	_ sdk.Adapter        = (*plugin)(nil)
	_ sdk.Requester      = (*plugin)(nil)
	_ sdk.RoomObserver   = (*plugin)(nil)
	_ sdk.StatusReporter = (*plugin)(nil)
	_ sdk.SessionStore   = (*plugin)(nil)
)

func (p *plugin) Info() sdk.Info {
	return sdk.Info{Kind: sdk.KindAdapter, Name: "redis", Version: "0.3.0", ProtocolVersion: sdk.ProtocolVersion}
}

func (p *plugin) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "url", Type: sdk.TypeString, Required: true, Description: `Redis URL, e.g. "redis://127.0.0.1:6379" (rediss:// for TLS)`},
		{Name: "key", Type: sdk.TypeString, Description: `channel prefix, as the Node adapter's "key" option (default "socket.io")`},
		{Name: "mode", Type: sdk.TypeString, Description: `"classic" (PUBLISH/PSUBSCRIBE, the default), "sharded" (Redis 7 SPUBLISH/SSUBSCRIBE, Redis Cluster) or "streams" (Redis streams, as @socket.io/redis-streams-adapter; needed for connection state recovery across instances)`},
		{Name: "queue", Type: sdk.TypeNumber, Description: `outgoing broadcasts held while Redis is slow or down (default 10000); when full, new ones are dropped and counted`},
		{Name: "requests_timeout", Type: sdk.TypeDuration, Description: `how long a cluster request waits for the other instances' answers unless it has its own timeout (default "5s"), as the Node adapter's "requestsTimeout"`},
		{Name: "subscription_mode", Type: sdk.TypeString, Description: `sharded mode: "dynamic" (the default: a channel per room held), "static" (namespace channels only) or "dynamic-private" (socket-id rooms too), as the Node adapter's "subscriptionMode"`},
		{Name: "cluster_nodes", Type: sdk.TypeListString, Description: `sharded mode on a Redis Cluster: "host:port" seeds besides the url's node (the url's credentials and TLS apply to all)`},
		{Name: "stream_name", Type: sdk.TypeString, Description: `streams mode: the stream broadcasts go through (default "socket.io"), as the Node adapter's "streamName"`},
		{Name: "stream_count", Type: sdk.TypeNumber, Description: `streams mode: how many streams the namespaces are spread over (default 1: one stream; n: <stream_name>-<hash(namespace) % n>), as "streamCount"`},
		{Name: "max_len", Type: sdk.TypeNumber, Description: `streams mode: about how many entries a stream keeps (XADD MAXLEN ~, default 10000), as "maxLen"; it bounds how far back a client can recover`},
		{Name: "read_count", Type: sdk.TypeNumber, Description: `streams mode: entries per XREAD (default 100), as "readCount"`},
		{Name: "block_time", Type: sdk.TypeDuration, Description: `streams mode: how long an XREAD waits for entries (default "5s"), as "blockTimeInMs"`},
		{Name: "session_key_prefix", Type: sdk.TypeString, Description: `streams mode: the prefix of the recovery session keys (default "sio:session:"), as "sessionKeyPrefix"`},
		{Name: "sharded_pubsub", Type: sdk.TypeBool, Description: `streams mode: requests and answers with SPUBLISH/SSUBSCRIBE (Redis 7) rather than PUBLISH/SUBSCRIBE (default false), as "useShardedPubSub"`},
	}}
}

type config struct {
	URL             string   `json:"url"`
	Key             string   `json:"key"`
	Mode            string   `json:"mode"`
	Queue           *float64 `json:"queue"`
	RequestsTimeout string   `json:"requests_timeout"`
}

func (p *plugin) metrics() *metrics {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.met == nil {
		p.met = newMetrics()
	}
	return p.met
}

func (p *plugin) Configure(_ context.Context, raw sdk.Config) error {
	var c config
	if err := raw.Decode(&c); err != nil {
		return err
	}
	if c.URL == "" {
		return errors.New(`adapter "redis": url is required`)
	}
	opts, err := redis.ParseURL(c.URL)
	if err != nil {
		return fmt.Errorf(`adapter "redis": url: %w`, err)
	}
	if c.Key == "" {
		c.Key = "socket.io"
	}
	queue := defaultQueue
	if c.Queue != nil {
		if q := *c.Queue; q < 1 || q != math.Trunc(q) || q > 1e8 {
			return fmt.Errorf(`adapter "redis": queue must be a whole number from 1 to 100000000, not %v`, q)
		}
		queue = int(*c.Queue)
	}
	rt := &runtime{met: p.metrics(), requestsTimeout: defaultRequestsTimeout}
	if c.RequestsTimeout != "" {
		d, err := time.ParseDuration(c.RequestsTimeout)
		if err != nil || d <= 0 {
			return fmt.Errorf(`adapter "redis": requests_timeout must be a positive duration such as "5s", not %q`, c.RequestsTimeout)
		}
		rt.requestsTimeout = d
	}
	if opts.MaxRetries == 0 {
		// The queue retries, and must see a failure to hold the backlog
		// until subscribers are back: go-redis's own retries would keep a
		// pipeline waiting through an outage and send it the moment Redis
		// returns.
		opts.MaxRetries = -1
	}
	var m mode
	switch c.Mode {
	case "", "classic":
		rdb := redis.NewClient(opts)
		rdb.AddHook(rt.met)
		m = newClassic(rdb, c.Key, newUID(), rt)
	case "sharded":
		m, err = newSharded(opts, c.Key, raw)
		if err != nil {
			return fmt.Errorf(`adapter "redis": %w`, err)
		}
		if a, ok := m.(attacher); ok {
			a.attach(rt)
		}
	case "streams":
		st, err := newStreams(opts, c.Key, raw)
		if err != nil {
			return fmt.Errorf(`adapter "redis": %w`, err)
		}
		st.attach(rt)
		m = st
	default:
		return sdk.AttrError("mode", fmt.Sprintf(`must be "classic", "sharded" or "streams", not %q`, c.Mode))
	}
	p.mu.Lock()
	rec := p.recovery
	p.mu.Unlock()
	if r, ok := m.(recoverer); ok && rec != nil {
		if err := r.enableRecovery(context.Background(), *rec); err != nil {
			_ = m.close()
			return err
		}
	}
	// A mode may count the subscribers its broadcasts go to, for the queue
	// to hold its backlog after an outage until they are back.
	var subscribers func(context.Context) (int64, error)
	if sc, ok := m.(interface {
		subscribers(context.Context) (int64, error)
	}); ok {
		subscribers = sc.subscribers
	}
	q := newOutQueue(queue, rt.met, m.flush, subscribers)
	p.mu.Lock()
	oldM, oldQ := p.m, p.q
	p.m, p.q = m, q
	p.mu.Unlock()
	shutdown(oldM, oldQ)
	return nil
}

// shutdown flushes q (bounded by closeFlushBound) and closes m.
func shutdown(m mode, q *outQueue) {
	if q != nil {
		q.close(closeFlushBound)
	}
	if m != nil {
		_ = m.close()
	}
}

// close publishes what is queued (for at most closeFlushBound) and releases
// the Redis connections. main calls it once Serve returns; tests call it.
func (p *plugin) close() {
	p.mu.Lock()
	m, q := p.m, p.q
	p.m, p.q = nil, nil
	p.mu.Unlock()
	shutdown(m, q)
}

func (p *plugin) mode() (mode, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		return nil, errors.New(`adapter "redis": not configured`)
	}
	return p.m, nil
}

// Publish queues the batch and returns at once: a writer goroutine sends
// it to Redis (one pipeline per batch), retrying while Redis is down. It
// fails only for messages that cannot be encoded (the others are queued),
// and reports messages that failed to encode after an earlier call
// returned. When the queue is full the newest messages are dropped and
// counted (redis_publish_dropped_total), not reported as an error. The
// messages' byte slices are kept until published: the caller must not
// modify them.
func (p *plugin) Publish(_ context.Context, batch []sdk.AdapterMessage) error {
	p.mu.Lock()
	q := p.q
	p.mu.Unlock()
	if q == nil {
		return errors.New(`adapter "redis": not configured`)
	}
	var errs []error
	valid := batch
	for i := range batch {
		if err := checkMessage(&batch[i]); err != nil {
			if len(errs) == 0 {
				valid = append([]sdk.AdapterMessage(nil), batch[:i]...)
			}
			errs = append(errs, fmt.Errorf("message %d: %w", i, err))
			continue
		}
		if len(errs) > 0 {
			valid = append(valid, batch[i])
		}
	}
	p.metrics().invalid.Add(uint64(len(errs)))
	q.add(valid)
	errs = append(errs, q.lateErrors()...)
	if len(errs) > 0 {
		return fmt.Errorf(`adapter "redis": publish: %w`, errors.Join(errs...))
	}
	return nil
}

func (p *plugin) Subscribe(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error {
	m, err := p.mode()
	if err != nil {
		return err
	}
	return m.subscribe(ctx, deliver)
}

func (p *plugin) Request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error) {
	m, err := p.mode()
	if err != nil {
		return sdk.RequestResult{}, err
	}
	return m.request(ctx, req, answer)
}

func (p *plugin) ServeRequests(ctx context.Context, namespaces []string, handle func(sdk.IncomingRequest)) error {
	m, err := p.mode()
	if err != nil {
		return err
	}
	return m.serveRequests(ctx, namespaces, handle)
}

func (p *plugin) RoomsChanged(ctx context.Context, changes []sdk.RoomChange) error {
	m, err := p.mode()
	if err != nil {
		return err
	}
	return m.roomsChanged(ctx, changes)
}

// Status reports Redis trouble (publishes failing, a subscription down) and
// the plugin's metrics. A mode that can check Redis itself (pinger) does so
// here: a blocked stream read does not notice a Redis that stopped
// answering until its block time is over.
func (p *plugin) Status(ctx context.Context) (sdk.Status, error) {
	met := p.metrics()
	if m, err := p.mode(); err == nil {
		if pg, ok := m.(pinger); ok {
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			met.setDown("ping", pg.ping(pctx))
			cancel()
		}
	}
	return sdk.Status{Degraded: met.degraded(), Metrics: met.snapshot()}, nil
}

// pinger is a mode that checks Redis on each Status.
type pinger interface {
	ping(ctx context.Context) error
}

// pingTimeout bounds that check: Status is asked about once a second.
const pingTimeout = 500 * time.Millisecond

const uidAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

// newUID is a 6-character id like Node's uid2(6).
func newUID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = uidAlphabet[b[i]&63]
	}
	return string(b[:])
}

// EnableRecovery turns connection state recovery on: only the streams mode
// can (pub/sub keeps nothing it carried, so nothing could be replayed).
func (p *plugin) EnableRecovery(ctx context.Context, cfg sdk.RecoveryConfig) error {
	m, err := p.mode()
	if err != nil {
		return err
	}
	r, ok := m.(recoverer)
	if !ok {
		return sdk.AttrError("mode", `connection state recovery across instances needs mode = "streams": pub/sub (classic and sharded modes) forgets what it published, so nothing a client missed could be replayed`)
	}
	if err := r.enableRecovery(ctx, cfg); err != nil {
		return err
	}
	p.mu.Lock()
	p.recovery = &cfg
	p.mu.Unlock()
	return nil
}

func (p *plugin) recoverer() (recoverer, error) {
	m, err := p.mode()
	if err != nil {
		return nil, err
	}
	r, ok := m.(recoverer)
	if !ok {
		return nil, errors.New(`adapter "redis": connection state recovery needs mode = "streams"`)
	}
	return r, nil
}

// SaveSessions writes a batch of session changes in one round trip.
func (p *plugin) SaveSessions(ctx context.Context, changes []sdk.SessionChange) error {
	r, err := p.recoverer()
	if err != nil {
		return err
	}
	return r.saveSessions(ctx, changes)
}

// RestoreSession takes a session and the broadcasts it missed.
func (p *plugin) RestoreSession(ctx context.Context, namespace, pid, offset string) (*sdk.RestoredSession, error) {
	r, err := p.recoverer()
	if err != nil {
		return nil, err
	}
	return r.restoreSession(ctx, namespace, pid, offset)
}
