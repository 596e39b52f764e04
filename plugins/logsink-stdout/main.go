// Command logsink-stdout is the simple log sink: it appends each log entry
// as one JSON line ({"@timestamp","level","message", ...fields}) to a file.
//
// go-plugin captures a plugin's stdout, so the lines go to the file named by
// the block's required path attribute, never to the process's stdout:
//
//	log_sink "stdout" { path = "/var/log/socket-server.ndjson" }
package main

import "github.com/socketfleet/socketfleet/sdk"

func main() { sdk.Serve(&plugin{}) }
