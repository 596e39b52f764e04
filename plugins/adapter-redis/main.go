// Command adapter-redis is the Redis adapter plugin: it carries broadcasts
// between socketfleet instances over Redis PUBLISH/PSUBSCRIBE, in the wire
// format of Node's @socket.io/redis-adapter (classic mode), so socketfleet
// and Node Socket.IO servers can share one cluster.
package main

import "github.com/socketfleet/socketfleet/sdk"

func main() { sdk.Serve(&plugin{}) }
