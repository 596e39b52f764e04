package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

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
	flush(ctx context.Context, batch []sdk.AdapterMessage, skipped func(error)) error
	// subscribe runs until ctx ends, delivering broadcasts from other
	// instances in batches; it survives Redis restarts.
	subscribe(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error
	request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error)
	serveRequests(ctx context.Context, namespaces []string, handle func(sdk.IncomingRequest)) error
	roomsChanged(ctx context.Context, changes []sdk.RoomChange) error
	close() error
}

// maxDeliver is the most messages handed to the core in one batch.
const maxDeliver = 256

type plugin struct {
	mu sync.Mutex
	m  mode
}

var (
	_ sdk.Adapter      = (*plugin)(nil)
	_ sdk.Requester    = (*plugin)(nil)
	_ sdk.RoomObserver = (*plugin)(nil)
)

func (p *plugin) Info() sdk.Info {
	return sdk.Info{Kind: sdk.KindAdapter, Name: "redis", Version: "0.2.0", ProtocolVersion: sdk.ProtocolVersion}
}

func (p *plugin) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "url", Type: sdk.TypeString, Required: true, Description: `Redis URL, e.g. "redis://127.0.0.1:6379" (rediss:// for TLS)`},
		{Name: "key", Type: sdk.TypeString, Description: `channel prefix, as the Node adapter's "key" option (default "socket.io")`},
		{Name: "mode", Type: sdk.TypeString, Description: `"classic" (PUBLISH/PSUBSCRIBE, the default) or "sharded" (Redis 7 SPUBLISH/SSUBSCRIBE, Redis Cluster)`},
	}}
}

type config struct {
	URL  string `json:"url"`
	Key  string `json:"key"`
	Mode string `json:"mode"`
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
	var m mode
	switch c.Mode {
	case "", "classic":
		m = newClassic(redis.NewClient(opts), c.Key, newUID())
	case "sharded":
		m, err = newSharded(opts, c.Key)
		if err != nil {
			return fmt.Errorf(`adapter "redis": %w`, err)
		}
	default:
		return fmt.Errorf(`adapter "redis": mode must be "classic" or "sharded", not %q`, c.Mode)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m != nil {
		_ = p.m.close()
	}
	p.m = m
	return nil
}

// close releases the Redis connections (tests; the process exit does it
// otherwise).
func (p *plugin) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m != nil {
		_ = p.m.close()
		p.m = nil
	}
}

func (p *plugin) mode() (mode, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		return nil, errors.New(`adapter "redis": not configured`)
	}
	return p.m, nil
}

// Publish sends the batch in one round trip. A message that cannot be
// encoded is skipped and reported; the others are still sent.
func (p *plugin) Publish(ctx context.Context, batch []sdk.AdapterMessage) error {
	m, err := p.mode()
	if err != nil {
		return err
	}
	var errs []error
	if err := m.flush(ctx, batch, func(err error) { errs = append(errs, err) }); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
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
