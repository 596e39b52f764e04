// Command authecho is a test auth plugin: it allows everyone and echoes its
// config, its pid and a call counter in Data. The CONNECT payload can ask it
// to misbehave: {"sleep_ms": N} hangs the call, {"stop": true} SIGSTOPs the
// process (its health check then times out), {"deny": true} refuses,
// {"say": "text"} prints text on stderr. Data also holds the config folder
// Configure was told (config_dir).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

// Overridden with -ldflags -X by the tests to build misreporting variants.
var (
	kind  = "auth"
	name  = "echo"
	proto = ""
)

type echo struct {
	mu    sync.Mutex
	cfg   sdk.Config
	dir   string // the config folder Configure was told
	calls int
}

func (e *echo) Info() sdk.Info {
	v := sdk.ProtocolVersion
	if proto != "" {
		v, _ = strconv.Atoi(proto)
	}
	return sdk.Info{Kind: sdk.Kind(kind), Name: name, Version: "test", ProtocolVersion: v}
}

func (e *echo) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "greeting", Type: sdk.TypeString, Required: true, Description: "echoed back"},
		{Name: "reject", Type: sdk.TypeBool},
	}}
}

func (e *echo) Configure(ctx context.Context, cfg sdk.Config) error {
	var c struct {
		Reject bool `json:"reject"`
	}
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if c.Reject {
		return errors.New("config rejected as asked")
	}
	e.mu.Lock()
	e.cfg, e.dir = cfg, sdk.ConfigDir(ctx)
	e.mu.Unlock()
	return nil
}

func (e *echo) Authenticate(ctx context.Context, req *sdk.AuthRequest) (*sdk.AuthDecision, error) {
	var a struct {
		SleepMS int    `json:"sleep_ms"`
		Stop    bool   `json:"stop"`
		Deny    bool   `json:"deny"`
		Say     string `json:"say"`
	}
	if len(req.Auth) > 0 {
		if err := json.Unmarshal(req.Auth, &a); err != nil {
			return nil, err
		}
	}
	if a.Say != "" {
		fmt.Fprintln(os.Stderr, a.Say) // reaches the core's log through go-plugin's stdio sync
	}
	if a.Stop {
		_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		<-ctx.Done() // never answer, even if the stop lands late
		return nil, ctx.Err()
	}
	if a.SleepMS > 0 {
		select {
		case <-time.After(time.Duration(a.SleepMS) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if a.Deny {
		return &sdk.AuthDecision{Allow: false, Message: "denied as asked"}, nil
	}
	e.mu.Lock()
	e.calls++
	data, _ := json.Marshal(map[string]any{"pid": os.Getpid(), "config": json.RawMessage(orEmpty(e.cfg)), "calls": e.calls, "config_dir": e.dir})
	e.mu.Unlock()
	return &sdk.AuthDecision{Allow: true, UserID: "user-" + req.Namespace, Data: data}, nil
}

func orEmpty(c sdk.Config) []byte {
	if len(c) == 0 {
		return []byte("null")
	}
	return c
}

func main() { sdk.Serve(&echo{}) }
