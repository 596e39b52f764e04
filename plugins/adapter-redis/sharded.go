package main

import (
	"errors"

	"github.com/redis/go-redis/v9"
)

// newSharded returns the sharded mode (Redis 7 SPUBLISH/SSUBSCRIBE, the
// format of Node's createShardedAdapter).
func newSharded(_ *redis.Options, _ string) (mode, error) {
	return nil, errors.New(`mode "sharded" is not implemented yet`)
}
