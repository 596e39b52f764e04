// Command auth-jwt is the auth "jwt" plugin: it verifies the JWT a
// connecting socket presents (CONNECT payload, Authorization header or
// query parameter) and returns the user id, rooms and selected claims.
// The core launches it as bin/plugins/auth-jwt; see README.md.
package main

import "github.com/socketfleet/socketfleet/sdk"

// main serves the plugin over go-plugin gRPC. newPlugin runs before Serve,
// so its log writer is the process's real stderr, which the host reads.
func main() { sdk.Serve(newPlugin()) }
