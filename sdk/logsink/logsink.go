// Package logsink is the log sink plugin kind: log entries cross the
// boundary in batches from a bounded queue in the core.
package logsink

import (
	"context"
	"encoding/json"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

// Entry is one log line.
type Entry struct {
	Time    time.Time
	Level   string
	Message string
	Fields  json.RawMessage // a JSON object
}

// Sink is a log sink plugin.
type Sink interface {
	sdk.Plugin
	// Write takes a batch; an error makes the core keep the batch and retry
	// (bounded), then drop and count.
	Write(ctx context.Context, batch []Entry) error
	// Flush blocks until everything written so far is stored (shutdown).
	Flush(ctx context.Context) error
}
