package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/sdk"
)

// The streams mode speaks the format of @socket.io/redis-streams-adapter
// 0.3.1: broadcasts without ack, SOCKETS_JOIN, SOCKETS_LEAVE and
// DISCONNECT_SOCKETS are entries of a Redis stream (XADD, read with XREAD
// from the last id seen, so a reader away for a while misses nothing still
// in the stream); requests that are answered, and the answers, are
// msgpack on pub/sub (the sharded mode's machinery, with plain PUBLISH and
// SUBSCRIBE unless sharded_pubsub). The stream also backs connection state
// recovery (streams_sessions.go).

// Defaults of Node's options.
const (
	defaultStreamName    = "socket.io"
	defaultMaxLen        = 10000
	defaultReadCount     = 100
	defaultBlockTime     = 5 * time.Second
	defaultSessionPrefix = "sio:session:"
)

// streamsConfig is the part of the block only this mode reads.
type streamsConfig struct {
	StreamName       string   `json:"stream_name"`
	StreamCount      *float64 `json:"stream_count"`
	MaxLen           *float64 `json:"max_len"`
	ReadCount        *float64 `json:"read_count"`
	BlockTime        string   `json:"block_time"`
	SessionKeyPrefix *string  `json:"session_key_prefix"`
	ShardedPubSub    bool     `json:"sharded_pubsub"`
	ClusterNodes     []string `json:"cluster_nodes"`
}

// streams is the streams mode.
type streams struct {
	ps   *sharded // pub/sub: requests and answers
	rdb  *redis.Client
	opts *redis.Options // for each Subscribe's own reading client
	uid  string
	met  *metrics

	name          string
	count         int
	maxLen        int64
	readCount     int64
	block         time.Duration
	sessionPrefix string

	ctx    context.Context // ends at close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// The reader: one Subscribe at a time reads the streams; a newer one
	// stops the older (readStop) and takes readMu.
	readMu   sync.Mutex
	stopMu   sync.Mutex
	readStop context.CancelFunc

	curMu  sync.Mutex
	cursor map[string]string // stream → the last id read ("" until known)

	recovering atomic.Bool
	sess       sessions

	// seen is the reader's duplicate table (streams_dedupe.go).
	seen *dedupe
	// retry is the batch the queue is sending, as encoded at its first
	// attempt: the queue calls flush again with the same batch until Redis
	// takes it, and every attempt must carry the same mids.
	retryMu sync.Mutex
	retry   struct {
		first *sdk.AdapterMessage // &batch[0]
		n     int                 // len(batch)
		cmds  [][]any             // each message's XADD; nil when it could not be encoded
		errs  []error             // why, for those
	}
}

// wholeNumber reads an optional numeric attribute in [lo, hi].
func wholeNumber(attr string, v *float64, def, lo, hi int64) (int64, error) {
	if v == nil {
		return def, nil
	}
	if n := *v; n < float64(lo) || n > float64(hi) || n != math.Trunc(n) {
		return 0, sdk.AttrError(attr, fmt.Sprintf("must be a whole number from %d to %d, not %v", lo, hi, n))
	}
	return int64(*v), nil
}

// newStreams returns the streams mode. opts is the parsed url; raw the
// whole block, for the attributes only this mode reads.
func newStreams(opts *redis.Options, key string, raw sdk.Config) (*streams, error) {
	var c streamsConfig
	if err := raw.Decode(&c); err != nil {
		return nil, err
	}
	if len(c.ClusterNodes) > 0 {
		return nil, sdk.AttrError("cluster_nodes", `mode = "streams" runs on one Redis node (a Redis Cluster is not supported yet)`)
	}
	st := &streams{name: c.StreamName, block: defaultBlockTime, sessionPrefix: defaultSessionPrefix, cursor: map[string]string{}, seen: newDedupe()}
	if st.name == "" {
		st.name = defaultStreamName
	}
	n, err := wholeNumber("stream_count", c.StreamCount, 1, 1, 1024)
	if err != nil {
		return nil, err
	}
	st.count = int(n)
	if st.maxLen, err = wholeNumber("max_len", c.MaxLen, defaultMaxLen, 1, 1e12); err != nil {
		return nil, err
	}
	if st.readCount, err = wholeNumber("read_count", c.ReadCount, defaultReadCount, 1, 100000); err != nil {
		return nil, err
	}
	if c.BlockTime != "" {
		d, err := time.ParseDuration(c.BlockTime)
		if err != nil || d < time.Millisecond || d > time.Minute {
			return nil, sdk.AttrError("block_time", fmt.Sprintf(`must be a duration from "1ms" to "1m" such as "5s", not %q`, c.BlockTime))
		}
		st.block = d
	}
	if c.SessionKeyPrefix != nil {
		if *c.SessionKeyPrefix == "" {
			return nil, sdk.AttrError("session_key_prefix", "must not be empty")
		}
		st.sessionPrefix = *c.SessionKeyPrefix
	}
	st.opts = opts
	st.rdb = redis.NewClient(opts)
	st.ps = newShardedMode(st.rdb, key, subStatic, defaultRequestsTimeout)
	st.ps.plain = !c.ShardedPubSub
	st.ps.msgpackOnly = true
	st.uid = st.ps.uid
	st.ctx, st.cancel = context.WithCancel(context.Background())
	st.sess.init()
	// The reader starts from the streams' newest entries as they are now
	// (Node reads from "$" at its first XREAD); when Redis is away it
	// learns them at its first read.
	ctx, cancel := context.WithTimeout(st.ctx, 2*time.Second)
	_ = st.initCursors(ctx)
	cancel()
	return st, nil
}

// attach takes the shell's metrics and request timeout.
func (st *streams) attach(rt *runtime) {
	st.met = rt.met
	st.ps.attach(rt) // adds the hook to st.rdb, the client both share
}

func (st *streams) count1(f func(*metrics)) {
	if st.met != nil {
		f(st.met)
	}
}

func (st *streams) setDown(what string, err error) {
	if st.met != nil {
		st.met.setDown(what, err)
	}
}

// streamNames are every stream this instance reads, sorted.
func (st *streams) streamNames() []string {
	if st.count <= 1 {
		return []string{st.name}
	}
	out := make([]string, 0, st.count)
	for i := 0; i < st.count; i++ {
		out = append(out, fmt.Sprintf("%s-%d", st.name, i))
	}
	sort.Strings(out)
	return out
}

func (st *streams) streamOf(nsp string) string { return streamFor(st.name, st.count, nspOrRoot(nsp)) }

// initCursors sets the cursor of each stream not yet known to its newest
// entry ("0-0" for a stream that does not exist yet).
func (st *streams) initCursors(ctx context.Context) error {
	var missing []string
	st.curMu.Lock()
	for _, s := range st.streamNames() {
		if st.cursor[s] == "" {
			missing = append(missing, s)
		}
	}
	st.curMu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	pipe := st.rdb.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(missing))
	for i, s := range missing {
		cmds[i] = pipe.XRevRangeN(ctx, s, "+", "-", 1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	st.curMu.Lock()
	defer st.curMu.Unlock()
	for i, s := range missing {
		id := "0-0"
		if ms := cmds[i].Val(); len(ms) > 0 {
			id = ms[0].ID
		}
		if st.cursor[s] == "" {
			st.cursor[s] = id
		}
	}
	return nil
}

// lastRead is the newest id read from nsp's stream ("" when unknown or the
// stream was empty).
func (st *streams) lastRead(nsp string) string {
	st.curMu.Lock()
	defer st.curMu.Unlock()
	if id := st.cursor[st.streamOf(nsp)]; id != "0-0" {
		return id
	}
	return ""
}

// flush appends the batch to the streams in one pipeline. A batch is
// encoded (and its messages numbered) once: when the queue sends it again
// after a failure, the same entries go out, with the same mids, so that
// readers can drop the copies of an attempt Redis ran after all.
func (st *streams) flush(ctx context.Context, batch []sdk.AdapterMessage, skipped func(error)) error {
	if len(batch) == 0 {
		return nil
	}
	st.retryMu.Lock()
	defer st.retryMu.Unlock()
	r := &st.retry
	if r.first != &batch[0] || r.n != len(batch) {
		r.first, r.n = &batch[0], len(batch)
		r.cmds, r.errs = make([][]any, len(batch)), make([]error, len(batch))
		for i := range batch {
			m := &batch[i]
			data, err := encodeStreamBroadcast(m)
			if err != nil {
				r.errs[i] = fmt.Errorf("message %d: %w", i, err)
				continue
			}
			nsp := nspOrRoot(m.Namespace)
			r.cmds[i] = streamArgs(st.streamOf(nsp), st.maxLen, st.uid, nsp, shBroadcast, data, nextMID(st.uid))
		}
	}
	pipe := st.rdb.Pipeline()
	for i, cmd := range r.cmds {
		if cmd == nil {
			skipped(r.errs[i])
			continue
		}
		pipe.Do(ctx, cmd...)
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf(`adapter "redis": xadd: %w`, err) // the queue retries this batch
		}
	}
	r.first, r.n, r.cmds, r.errs = nil, 0, nil, nil
	return nil
}

// subscribe reads the streams from the last id seen until ctx ends,
// delivering broadcasts in batches and handing SOCKETS_JOIN, SOCKETS_LEAVE
// and DISCONNECT_SOCKETS to ServeRequests' handler. A later call takes
// over from an earlier one, where it stopped.
func (st *streams) subscribe(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error {
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	st.stopMu.Lock()
	if st.readStop != nil {
		st.readStop()
	}
	st.readStop = stop
	st.stopMu.Unlock()
	st.readMu.Lock()
	defer st.readMu.Unlock()
	defer st.setDown("stream", nil)
	// The reading client is this call's own: closing it when the call
	// ends interrupts a blocked XREAD (go-redis does not watch the
	// context while a command blocks).
	ro := *st.opts
	ro.PoolSize, ro.MinIdleConns, ro.MaxIdleConns = 1, 0, 1
	reader := redis.NewClient(&ro)
	if st.met != nil {
		reader.AddHook(st.met)
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		select {
		case <-st.ctx.Done():
			stop()
		case <-rctx.Done():
		}
		_ = reader.Close()
	}()
	defer func() { stop(); <-closed }()
	backoff := backoffMin
	fail := func(err error) bool {
		st.setDown("stream", redisCause(err))
		select {
		case <-time.After(backoff):
		case <-rctx.Done():
			return false
		}
		backoff = min(2*backoff, backoffMax)
		return true
	}
	names := st.streamNames()
	for rctx.Err() == nil {
		if err := st.initCursors(rctx); err != nil {
			if !fail(err) {
				break
			}
			continue
		}
		args := make([]string, 0, 2*len(names))
		args = append(args, names...)
		st.curMu.Lock()
		for _, s := range names {
			args = append(args, st.cursor[s])
		}
		st.curMu.Unlock()
		res, err := reader.XRead(rctx, &redis.XReadArgs{Streams: args, Count: st.readCount, Block: st.block}).Result()
		if errors.Is(err, redis.Nil) {
			backoff = backoffMin
			st.setDown("stream", nil)
			continue
		}
		if err != nil {
			if rctx.Err() != nil {
				break
			}
			if !fail(err) {
				break
			}
			continue
		}
		backoff = backoffMin
		st.setDown("stream", nil)
		for _, xs := range res {
			if err := st.deliverEntries(xs.Stream, xs.Messages, deliver); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if st.ctx.Err() != nil {
		return errors.New(`adapter "redis": closed`)
	}
	return errors.New(`adapter "redis": a newer Subscribe took over`)
}

// deliverEntries routes entries of one stream and moves its cursor past
// each batch once it is delivered.
func (st *streams) deliverEntries(stream string, entries []redis.XMessage, deliver func([]sdk.AdapterMessage) error) error {
	recovering := st.recovering.Load()
	batch := make([]sdk.AdapterMessage, 0, min(len(entries), maxDeliver))
	last := ""
	// Entries are checked for duplicates in tx, committed with the cursor:
	// a batch the core refuses is read again, and must not then be taken
	// for copies of itself.
	tx := st.seen.begin(stream)
	now := time.Now()
	dropped := 0
	flush := func() error {
		if len(batch) > 0 {
			if err := deliver(batch); err != nil {
				return err
			}
			batch = make([]sdk.AdapterMessage, 0, min(len(entries), maxDeliver))
		}
		if last != "" {
			st.curMu.Lock()
			st.cursor[stream] = last
			st.curMu.Unlock()
		}
		tx.commit(now)
		if dropped > 0 {
			st.count1(func(m *metrics) { m.dupRead.Add(uint64(dropped)) })
			dropped = 0
		}
		return nil
	}
	for _, e := range entries {
		last = e.ID
		if tx.dup(e.Values[midField], now) {
			dropped++
			continue
		}
		w, ok, err := decodeStreamEntry(e.Values)
		if err != nil || !ok {
			continue
		}
		own := w.UID == st.uid
		if w.Type != shBroadcast || w.Data.RequestID != nil {
			if !own {
				st.ps.routeWire(w, w.Nsp)
			}
			continue
		}
		volatile := w.Data.Opts.Flags.Volatile
		if own && (!recovering || volatile) {
			continue
		}
		data, err := shPacketData(w.Data.Packet)
		if err != nil {
			continue
		}
		m := sdk.AdapterMessage{Namespace: w.Nsp, Rooms: w.Data.Opts.Rooms, Except: w.Data.Opts.Except,
			Data: data, Attachments: w.attachments, Volatile: volatile}
		if recovering && !volatile {
			m.Offset = e.ID
		}
		batch = append(batch, m)
		if len(batch) == maxDeliver {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// request sends SOCKETS_JOIN, SOCKETS_LEAVE and DISCONNECT_SOCKETS to the
// stream, as Node does, and everything answered on pub/sub.
func (st *streams) request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error) {
	var typ int
	var data *object
	opts := &broadcastOpts{rooms: req.Rooms, except: req.Except}
	switch req.Type {
	case sdk.RequestSocketsJoin:
		typ, data = shSocketsJoin, shObj("opts", opts, "rooms", req.Targets)
	case sdk.RequestSocketsLeave:
		typ, data = shSocketsLeave, shObj("opts", opts, "rooms", req.Targets)
	case sdk.RequestDisconnectSockets:
		typ, data = shDisconnect, shObj("opts", opts, "close", req.Close)
	case sdk.RequestAllRooms:
		return sdk.RequestResult{}, fmt.Errorf(`adapter "redis" (streams): all rooms: %w (Node's ClusterAdapter has no allRooms)`, sdk.ErrUnsupported)
	default:
		return st.ps.request(ctx, req, answer)
	}
	payload, err := streamData(data, nil)
	if err != nil {
		return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": %v request: %w`, req.Type, err)
	}
	nsp := nspOrRoot(req.Namespace)
	if err := st.rdb.Do(ctx, streamArgs(st.streamOf(nsp), st.maxLen, st.uid, nsp, typ, payload, nextMID(st.uid))...).Err(); err != nil {
		return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": xadd: %w`, err)
	}
	return sdk.RequestResult{}, nil
}

func (st *streams) serveRequests(ctx context.Context, namespaces []string, handle func(sdk.IncomingRequest)) error {
	return st.ps.serveRequests(ctx, namespaces, handle)
}

// roomsChanged: the streams adapter has no room channels.
func (st *streams) roomsChanged(context.Context, []sdk.RoomChange) error { return nil }

func (st *streams) close() error {
	st.cancel()
	st.sess.stop()
	st.wg.Wait()
	return st.ps.close() // closes st.rdb
}

// ping checks that Redis answers (Status asks about once a second).
func (st *streams) ping(ctx context.Context) error {
	if err := st.rdb.Ping(ctx).Err(); err != nil {
		return redisCause(err)
	}
	return nil
}
