package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

type plugin struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

var _ sdk.LogSink = (*plugin)(nil)

func (p *plugin) Info() sdk.Info {
	return sdk.Info{Kind: sdk.KindLogSink, Name: "stdout", Version: "0.1.0", ProtocolVersion: sdk.ProtocolVersion}
}

func (p *plugin) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "path", Type: sdk.TypeString, Required: true, Description: `file the JSON lines are appended to (created if missing); "-" is not allowed: go-plugin captures the plugin's stdout`},
	}}
}

type config struct {
	Path *string `json:"path"`
}

func (p *plugin) Configure(_ context.Context, raw sdk.Config) error {
	var c config
	if err := raw.Decode(&c); err != nil {
		return err
	}
	switch {
	case c.Path == nil || *c.Path == "":
		return errors.New(`log_sink "stdout": path is required (the file the JSON lines are appended to)`)
	case *c.Path == "-" || *c.Path == "/dev/stdout":
		return errors.New(`log_sink "stdout": path cannot be stdout: go-plugin captures a plugin's stdout; give a file`)
	}
	f, err := os.OpenFile(*c.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf(`log_sink "stdout": %w`, err)
	}
	p.mu.Lock()
	old := p.f
	p.f, p.path = f, *c.Path
	p.mu.Unlock()
	if old != nil {
		_ = old.Sync()
		_ = old.Close()
	}
	return nil
}

// Write appends the batch with one write call; an error (disk full, ...)
// makes the core retry the batch.
func (p *plugin) Write(_ context.Context, batch []sdk.LogEntry) error {
	var buf bytes.Buffer
	for _, e := range batch {
		buf.Write(document(e))
		buf.WriteByte('\n')
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f == nil {
		return errors.New("not configured")
	}
	if _, err := p.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write %s: %w", p.path, err)
	}
	return nil
}

// Flush fsyncs the file.
func (p *plugin) Flush(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f == nil {
		return errors.New("not configured")
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", p.path, err)
	}
	return nil
}

// document renders e as one JSON object: "@timestamp" (RFC 3339, UTC, with
// nanoseconds), "level", "message", then the entry's fields in name order.
// A field named like one of the first three is renamed "fields.<name>" (the
// logrus convention); fields that are not a JSON object go under "fields".
func document(e sdk.LogEntry) []byte {
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	var b bytes.Buffer
	b.WriteString(`{"@timestamp":`)
	writeJSON(&b, t.UTC().Format(time.RFC3339Nano))
	b.WriteString(`,"level":`)
	writeJSON(&b, e.Level)
	b.WriteString(`,"message":`)
	writeJSON(&b, e.Message)
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
		writeJSON(&b, name)
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

func writeJSON(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}
