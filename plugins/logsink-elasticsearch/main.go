// Command logsink-elasticsearch is the log sink that indexes log entries
// into Elasticsearch 7 with the bulk API (github.com/olivere/elastic/v7):
//
//	log_sink "elasticsearch" {
//	  url   = env("ELASTICSEARCH_URL", "http://127.0.0.1:9200")
//	  index = "socket-server-%Y.%m.%d"
//	}
//
// Write only queues (bounded by the buffer attribute) and returns at once; a
// background loop sends bulk requests and retries 429s, 5xx and outages
// with backoff. See README.md for the guarantees.
package main

import "github.com/socketfleet/socketfleet/sdk"

func main() { sdk.Serve(&plugin{}) }
