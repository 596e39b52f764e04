package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

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
		buf.Write(e.Document(e.Time))
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
