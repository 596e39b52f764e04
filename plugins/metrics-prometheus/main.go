// Command metrics-prometheus is the built-in metrics plugin: it renders the
// core's metrics snapshot in the Prometheus text exposition format (0.0.4),
// which the core serves at GET /metrics.
//
//	metrics "prometheus" {
//	  environment = env("ENVIRONMENT", "production")
//	}
package main

import "github.com/socketfleet/socketfleet/sdk"

func main() { sdk.Serve(&plugin{}) }
