// Command adapter-redis is the Redis adapter plugin: it carries broadcasts
// and cluster requests between socketfleet instances over Redis pub/sub, in
// the wire format of Node's @socket.io/redis-adapter, so socketfleet and
// Node Socket.IO servers can share one cluster.
package main

import (
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/sdk"
)

func main() {
	// Before Serve, which replaces os.Stderr: this is the host's log.
	redis.SetLogger(&quietLogger{out: os.Stderr, every: 10 * time.Second})
	p := &plugin{}
	sdk.Serve(p)
	// The host is done with us: publish what is still queued (bounded).
	p.close()
}
