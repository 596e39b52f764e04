// Command sharding-hash is the built-in sharding plugin: it tells the core
// which shard a user belongs to, by the scaling guide's md5 scheme or by
// rendezvous hashing (which moves only about 1/N of the users when a shard
// is added).
package main

import "github.com/socketfleet/socketfleet/sdk"

func main() { sdk.Serve(&plugin{}) }
