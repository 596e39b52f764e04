// The log sink kind: entries cross the boundary in batches from a bounded
// queue in the core.

package sdk

import (
	"context"
	"encoding/json"
	"time"
)

// LogEntry is one log line.
type LogEntry struct {
	Time    time.Time
	Level   string
	Message string
	Fields  json.RawMessage // a JSON object
}

// LogSink is a log sink plugin.
type LogSink interface {
	Plugin
	// Write takes a batch; an error makes the core keep the batch and retry
	// (bounded), then drop and count.
	Write(ctx context.Context, batch []LogEntry) error
	// Flush blocks until everything written so far is stored (shutdown).
	Flush(ctx context.Context) error
}
