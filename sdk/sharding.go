// The sharding kind: which shard a user belongs to, asked once per
// handshake after auth.

package sdk

import "context"

// Assignment says where a user belongs.
type Assignment struct {
	Shard int    // 0-based shard index
	Local bool   // this instance serves that shard
	URL   string // where to connect instead (empty when unknown)
}

// Sharder is a sharding plugin.
type Sharder interface {
	Plugin
	Assign(ctx context.Context, userID string) (*Assignment, error)
}
