// Command testplugin is a tiny plugin for the sdk's tests (and anyone
// testing a host): TESTPLUGIN_KIND selects what it serves.
//
//	auth      allows {"token":"good"} as user "u1" in room "r1", refuses
//	          other tokens, fails with an error for {"token":"error"}
//	adapter   a loopback (plugintest.Loopback)
//	sharding  4 shards by the user id's length; shard 0 is local
//	metrics   "text/plain", one line per sample
//	log_sink  discards
//	none      implements no kind: Serve must refuse it
//	mismatch  an Authenticator whose Info says "adapter": Serve must refuse it
//
// TESTPLUGIN_IGNORE_SIGPIPE=1 ignores SIGPIPE, so that only the sdk's
// parent watch can end the process once its host is gone.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

func main() {
	if os.Getenv("TESTPLUGIN_IGNORE_SIGPIPE") == "1" {
		signal.Ignore(syscall.SIGPIPE)
	}
	switch kind := os.Getenv("TESTPLUGIN_KIND"); kind {
	case "auth":
		sdk.Serve(auth{base{sdk.KindAuth}})
	case "adapter":
		sdk.Serve(plugintest.NewLoopback())
	case "sharding":
		sdk.Serve(sharding{base{sdk.KindSharding}})
	case "metrics":
		sdk.Serve(metrics{base{sdk.KindMetrics}})
	case "log_sink":
		sdk.Serve(logSink{base{sdk.KindLogSink}})
	case "none":
		sdk.Serve(base{sdk.KindAuth})
	case "mismatch":
		sdk.Serve(auth{base{sdk.KindAdapter}})
	default:
		fmt.Fprintf(os.Stderr, "testplugin: unknown TESTPLUGIN_KIND %q\n", kind)
		os.Exit(2)
	}
}

// base is the lifecycle of every test plugin: named "test", no attributes
// but an optional "note".
type base struct{ kind sdk.Kind }

func (b base) Info() sdk.Info {
	return sdk.Info{Kind: b.kind, Name: "test", Version: "0.0.1", ProtocolVersion: sdk.ProtocolVersion}
}

func (base) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{{Name: "note", Type: sdk.TypeString, Description: "ignored"}}}
}

func (base) Configure(context.Context, sdk.Config) error { return nil }

type auth struct{ base }

func (auth) Authenticate(_ context.Context, req *sdk.AuthRequest) (*sdk.AuthDecision, error) {
	switch s := string(req.Auth); {
	case strings.Contains(s, `"token":"good"`):
		return &sdk.AuthDecision{Allow: true, UserID: "u1", Rooms: []string{"r1"}, Data: []byte(`{"role":"tester"}`)}, nil
	case strings.Contains(s, `"token":"error"`):
		return nil, errors.New("token store unreachable")
	}
	return &sdk.AuthDecision{Message: "invalid token", ErrorData: []byte(`{"code":"bad_token"}`)}, nil
}

type sharding struct{ base }

func (sharding) Assign(_ context.Context, user string) (*sdk.Assignment, error) {
	shard := len(user) % 4
	return &sdk.Assignment{Shard: shard, Local: shard == 0, URL: fmt.Sprintf("wss://shard%d.example", shard)}, nil
}

type metrics struct{ base }

func (metrics) Render(_ context.Context, snap *sdk.MetricsSnapshot) (string, []byte, error) {
	var b strings.Builder
	for _, s := range append(snap.Counters, snap.Gauges...) {
		fmt.Fprintf(&b, "%s %g\n", s.Name, s.Value)
	}
	for _, h := range snap.Histograms {
		fmt.Fprintf(&b, "%s_count %d\n", h.Name, h.Count)
	}
	return "text/plain", []byte(b.String()), nil
}

type logSink struct{ base }

func (logSink) Write(context.Context, []sdk.LogEntry) error { return nil }
func (logSink) Flush(context.Context) error                 { return nil }
