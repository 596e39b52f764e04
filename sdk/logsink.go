// The log sink kind: entries cross the boundary in batches from a bounded
// queue in the core.

package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
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

// Document renders e as one flat JSON object, the shape log stores expect:
// "@timestamp" (RFC 3339, UTC, nanoseconds; t, or now when t is zero),
// "level", "message", then the entry's fields in name order. A field named
// like one of the first three is renamed "fields.<name>" (the logrus
// convention; stores refuse duplicate keys); fields that are not a JSON
// object go under "fields".
func (e LogEntry) Document(t time.Time) []byte {
	if t.IsZero() {
		t = time.Now()
	}
	var b bytes.Buffer
	b.WriteString(`{"@timestamp":`)
	writeJSONString(&b, t.UTC().Format(time.RFC3339Nano))
	b.WriteString(`,"level":`)
	writeJSONString(&b, e.Level)
	b.WriteString(`,"message":`)
	writeJSONString(&b, e.Message)
	var fields map[string]json.RawMessage
	if len(bytes.TrimSpace(e.Fields)) > 0 {
		if err := json.Unmarshal(e.Fields, &fields); err != nil || fields == nil {
			fields = map[string]json.RawMessage{}
			if json.Valid(e.Fields) {
				fields["fields"] = e.Fields
			} else {
				s, _ := json.Marshal(string(e.Fields))
				fields["fields"] = s
			}
		}
	}
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		name := k
		switch k {
		case "@timestamp", "level", "message":
			name = "fields." + k
			if _, clash := fields[name]; clash {
				continue
			}
		}
		b.WriteByte(',')
		writeJSONString(&b, name)
		b.WriteByte(':')
		var c bytes.Buffer
		if json.Compact(&c, fields[k]) == nil {
			b.Write(c.Bytes())
		} else {
			b.WriteString("null")
		}
	}
	b.WriteByte('}')
	return b.Bytes()
}

func writeJSONString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}
