// Command logcollect is a test log_sink plugin: it appends one JSON line per
// Write ({"write":<n>,"entries":<len>,"first":"<message>"}) and per Flush
// ({"flush":true}) to the file named by its "out" attribute. "fail_writes"
// makes the first N writes fail.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"

	"github.com/socketfleet/socketfleet/sdk"
)

type collect struct {
	mu     sync.Mutex
	out    string
	fail   int
	writes int
}

func (c *collect) Info() sdk.Info {
	return sdk.Info{Kind: sdk.KindLogSink, Name: "collect", Version: "test", ProtocolVersion: sdk.ProtocolVersion}
}

func (c *collect) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "out", Type: sdk.TypeString, Required: true},
		{Name: "fail_writes", Type: sdk.TypeNumber},
	}}
}

func (c *collect) Configure(_ context.Context, cfg sdk.Config) error {
	var v struct {
		Out        string `json:"out"`
		FailWrites int    `json:"fail_writes"`
	}
	if err := cfg.Decode(&v); err != nil {
		return err
	}
	c.mu.Lock()
	c.out, c.fail = v.Out, v.FailWrites
	c.mu.Unlock()
	return nil
}

func (c *collect) record(v any) error {
	b, _ := json.Marshal(v)
	f, err := os.OpenFile(c.out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(b, '\n'))
	return err
}

func (c *collect) Write(_ context.Context, batch []sdk.LogEntry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail > 0 {
		c.fail--
		return errors.New("write failed as asked")
	}
	c.writes++
	first := ""
	if len(batch) > 0 {
		first = batch[0].Message
	}
	return c.record(map[string]any{"write": c.writes, "entries": len(batch), "first": first})
}

func (c *collect) Flush(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.record(map[string]any{"flush": true})
}

func main() { sdk.Serve(&collect{}) }
