// Command adapter-redis is the Redis adapter plugin: it carries broadcasts
// and cluster requests between socketfleet instances over Redis pub/sub, in
// the wire format of Node's @socket.io/redis-adapter, so socketfleet and
// Node Socket.IO servers can share one cluster.
package main

import "github.com/socketfleet/socketfleet/sdk"

func main() {
	p := &plugin{}
	sdk.Serve(p)
	// The host is done with us: publish what is still queued (bounded).
	p.close()
}
