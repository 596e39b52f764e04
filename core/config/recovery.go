package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Recovery is Socket.IO's connection state recovery (the server block's
// recovery block): a client whose connection dropped gets its socket back
// (id, rooms, data) with the broadcasts it missed.
type Recovery struct {
	// MaxDisconnection is how long a disconnected socket stays
	// recoverable (Node's maxDisconnectionDuration), default 2m.
	MaxDisconnection time.Duration
	// SkipAuth: a recovered socket skips the auth plugin (Node's
	// skipMiddlewares), default true.
	SkipAuth bool
	// BufferSize and BufferEntries bound the in-memory replay buffer of a
	// single instance (what a recovering client is sent); the oldest
	// broadcasts go first, counted, even when younger than
	// MaxDisconnection. Defaults 64 MiB and 100,000.
	BufferSize    int64
	BufferEntries int
	Range         hcl.Range // the block, for messages about it
}

// Recovery defaults.
const (
	DefaultMaxDisconnection = 2 * time.Minute
	DefaultRecoveryBuffer   = 64 << 20
	DefaultRecoveryEntries  = 100000
)

var recoverySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "max_disconnection"}, {Name: "skip_auth"}, {Name: "buffer_size"}, {Name: "buffer_entries"},
	},
}

func (d *decoder) recovery(b *hcl.Block) *Recovery {
	if b == nil {
		return nil
	}
	r := &Recovery{MaxDisconnection: DefaultMaxDisconnection, SkipAuth: true,
		BufferSize: DefaultRecoveryBuffer, BufferEntries: DefaultRecoveryEntries, Range: b.DefRange}
	c := d.content(b.Body, recoverySchema)
	d.duration(c.Attributes["max_disconnection"], &r.MaxDisconnection, true)
	d.boolean(c.Attributes["skip_auth"], &r.SkipAuth)
	d.size(c.Attributes["buffer_size"], &r.BufferSize)
	d.integer(c.Attributes["buffer_entries"], &r.BufferEntries, 1)
	return r
}
