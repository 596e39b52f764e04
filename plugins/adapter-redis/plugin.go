package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/sdk"
)

// maxDeliver is the most messages handed to the core in one batch.
const maxDeliver = 256

type plugin struct {
	mu  sync.Mutex
	rdb *redis.Client
	key string
	uid string
}

var _ sdk.Adapter = (*plugin)(nil)

func (p *plugin) Info() sdk.Info {
	return sdk.Info{Kind: sdk.KindAdapter, Name: "redis", Version: "0.1.0", ProtocolVersion: sdk.ProtocolVersion}
}

func (p *plugin) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "url", Type: sdk.TypeString, Required: true, Description: `Redis URL, e.g. "redis://127.0.0.1:6379" (rediss:// for TLS)`},
		{Name: "key", Type: sdk.TypeString, Description: `channel prefix, as the Node adapter's "key" option (default "socket.io")`},
	}}
}

type config struct {
	URL string `json:"url"`
	Key string `json:"key"`
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
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rdb != nil {
		_ = p.rdb.Close()
	}
	p.rdb, p.key, p.uid = redis.NewClient(opts), c.Key, newUID()
	return nil
}

// close releases the Redis connections (tests; the process exit does it
// otherwise).
func (p *plugin) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rdb != nil {
		_ = p.rdb.Close()
		p.rdb = nil
	}
}

func (p *plugin) client() (*redis.Client, string, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rdb == nil {
		return nil, "", "", errors.New(`adapter "redis": not configured`)
	}
	return p.rdb, p.key, p.uid, nil
}

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

// channel is where the Node adapter publishes a broadcast: the room channel
// for exactly one room, the namespace channel otherwise.
func channel(key string, m *sdk.AdapterMessage) string {
	ch := key + "#" + nspOrRoot(m.Namespace) + "#"
	if len(m.Rooms) == 1 {
		ch += m.Rooms[0] + "#"
	}
	return ch
}

// Publish sends the batch in one pipeline (one round trip). A message that
// cannot be encoded is skipped and reported; the others are still sent.
func (p *plugin) Publish(ctx context.Context, batch []sdk.AdapterMessage) error {
	rdb, key, uid, err := p.client()
	if err != nil {
		return err
	}
	var errs []error
	pipe := rdb.Pipeline()
	for i := range batch {
		m := &batch[i]
		payload, err := encodeMessage(uid, m)
		if err != nil {
			errs = append(errs, fmt.Errorf("message %d: %w", i, err))
			continue
		}
		pipe.Publish(ctx, channel(key, m), payload)
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			errs = append(errs, fmt.Errorf(`adapter "redis": publish: %w`, err))
		}
	}
	return errors.Join(errs...)
}

// Subscribe listens on <key>#* (every namespace and room channel). go-redis
// reconnects and re-subscribes by itself, so this only returns when ctx ends
// or deliver fails.
func (p *plugin) Subscribe(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error {
	rdb, key, uid, err := p.client()
	if err != nil {
		return err
	}
	ps := rdb.PSubscribe(ctx, globEscape(key)+"#*")
	defer ps.Close()
	ch := ps.Channel(redis.WithChannelSize(4 * maxDeliver))
	prefix := key + "#"
	batch := make([]sdk.AdapterMessage, 0, maxDeliver)
	add := func(rm *redis.Message) {
		if m, ok := p.accept(prefix, uid, rm); ok {
			batch = append(batch, m)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case rm, ok := <-ch:
			if !ok {
				return ctx.Err()
			}
			add(rm)
		drain:
			for len(batch) < maxDeliver {
				select {
				case rm, ok := <-ch:
					if !ok {
						break drain
					}
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
func (p *plugin) accept(prefix, uid string, rm *redis.Message) (sdk.AdapterMessage, bool) {
	if !strings.HasPrefix(rm.Channel, prefix) {
		return sdk.AdapterMessage{}, false
	}
	d, err := decodeMessage([]byte(rm.Payload))
	if err != nil || d.uid == uid || (d.typ != packetEvent && d.typ != 5) {
		return sdk.AdapterMessage{}, false
	}
	if !strings.HasPrefix(rm.Channel[len(prefix):], d.msg.Namespace+"#") {
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
