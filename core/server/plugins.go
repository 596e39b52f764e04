package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/core/routing"
	"github.com/socketfleet/socketfleet/sdk"
)

// plugins are the running plugins of an instance (one config generation's).
type plugins struct {
	entries []*pluginEntry // every configured plugin, in config order
	routing routing.Plugins
	metrics sdk.MetricsExporter
	adapter degradedReporter // the adapter plugin, nil without one
	link    *pluginhost.Link
	logs    []*pluginhost.LogBuffer
}

// pluginEntry is one plugin block's process. Each has a host of its own,
// so that a reload can stop one plugin and keep the others.
type pluginEntry struct {
	key  string // kind, folder and the block's text: equal keys, same plugin (reload.go)
	kind sdk.Kind
	host *pluginhost.Host
	p    *pluginhost.Plugin
	link *pluginhost.Link      // adapter
	logs *pluginhost.LogBuffer // log_sink
}

// degradedReporter is the part of an adapter plugin /ready asks
// (*pluginhost.Plugin).
type degradedReporter interface{ Degraded() string }

// launchPlugins starts every plugin block, decodes the block with the schema
// the plugin declares and configures it. Problems come back as diagnostics
// pointing at the block (launch failures) or the attribute (schema errors).
func launchPlugins(ctx context.Context, cfg *config.Config, opts pluginhost.Options) (*plugins, hcl.Diagnostics) {
	return launchKeeping(ctx, cfg, nil, opts, nil)
}

// launchKeeping is launchPlugins for a reload: a block whose key (keys,
// from pluginKey) names an entry of prev keeps that entry's process;
// the others are launched. On error it stops only what it launched.
func launchKeeping(ctx context.Context, cfg *config.Config, keys []string, opts pluginhost.Options, prev *plugins) (*plugins, hcl.Diagnostics) {
	ps := &plugins{}
	var launched []*pluginEntry
	var diags hcl.Diagnostics
	for i, pb := range cfg.Plugins {
		key := ""
		if keys != nil {
			key = keys[i]
		}
		e := prev.find(key)
		if e == nil {
			e = &pluginEntry{key: key, kind: pb.Kind, host: pluginhost.New(opts)}
			launched = append(launched, e)
			p, err := e.host.Launch(ctx, pluginhost.Spec{
				Kind: pb.Kind, Name: pb.Name, Command: pb.Command, Dir: cfg.Server.PluginDir,
				SHA256: pb.SHA256, CallTimeout: pb.CallTimeout, Where: pb.Where(), ConfigDir: pb.ConfigDir,
			})
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Plugin failed to start",
					Detail: err.Error(), Subject: pb.DeclRange.Ptr()})
				continue
			}
			pc, d := pb.DecodeBody(p.Schema())
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			if err := p.Configure(ctx, pc); err != nil {
				diags = append(diags, configureDiag(pb, err))
				continue
			}
			e.p = p
			switch pb.Kind {
			case sdk.KindAdapter:
				e.link = p.ClusterLink(pluginhost.LinkOptions{})
			case sdk.KindLogSink:
				e.logs = p.LogBuffer(pluginhost.BufferOptions{})
			}
		}
		ps.entries = append(ps.entries, e)
		p := e.p
		switch pb.Kind {
		case sdk.KindAuth:
			ps.routing.Auth = p.Authenticator()
		case sdk.KindSharding:
			ps.routing.Sharding = p.Sharder()
		case sdk.KindMetrics:
			ps.metrics = p.MetricsExporter()
		case sdk.KindAdapter:
			ps.adapter = p
			ps.link = e.link
		case sdk.KindLogSink:
			ps.logs = append(ps.logs, e.logs)
		}
	}
	if rec := cfg.Server.Recovery; rec != nil && ps.link != nil && !diags.HasErrors() && prev.find(keyOf(ps, sdk.KindAdapter)) == nil {
		if err := ps.link.EnableRecovery(ctx, sdk.RecoveryConfig{MaxDisconnection: rec.MaxDisconnection}); err != nil {
			detail := err.Error()
			var pe *sdk.PluginError
			if errors.As(err, &pe) {
				detail = pe.Message
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError,
				Summary: "Connection state recovery needs the adapter's help",
				Detail: "With an adapter, sessions and missed broadcasts must be kept where every instance can read them, and the " +
					cfg.Plugin(sdk.KindAdapter).Where() + " cannot: " + detail +
					" (Without an adapter block, a single instance keeps them in its memory.)",
				Subject: rec.Range.Ptr()})
		}
	}
	if diags.HasErrors() {
		closeEntries(context.Background(), launched)
		return nil, diags
	}
	return ps, diags
}

// find returns the entry with key, nil if none (or ps is nil, or key "").
func (ps *plugins) find(key string) *pluginEntry {
	if ps == nil || key == "" {
		return nil
	}
	for _, e := range ps.entries {
		if e.key == key {
			return e
		}
	}
	return nil
}

// keyOf is the key of the entry serving kind, "" without one.
func keyOf(ps *plugins, kind sdk.Kind) string {
	for _, e := range ps.entries {
		if e.kind == kind {
			return e.key
		}
	}
	return ""
}

// states lists every plugin's supervision state.
func (ps *plugins) states() []pluginhost.State {
	var out []pluginhost.State
	for _, e := range ps.entries {
		out = append(out, e.host.States()...)
	}
	return out
}

// stats lists every plugin's call counters.
func (ps *plugins) stats() []pluginhost.Stats {
	var out []pluginhost.Stats
	for _, e := range ps.entries {
		out = append(out, e.host.Stats()...)
	}
	return out
}

// ValidatePlugins launches the plugins of cfg only to check their blocks
// against the schemas they declare, then stops them. Nothing serves. What
// the plugins log goes to debug: validate answers with diagnostics only.
func ValidatePlugins(ctx context.Context, cfg *config.Config, log *logrus.Entry) hcl.Diagnostics {
	ps, diags := launchPlugins(ctx, cfg, pluginhost.Options{Log: log, Quiet: true})
	if ps != nil {
		ps.close(ctx)
	}
	return diags
}

// close flushes the log sinks (bounded) and stops every plugin.
func (ps *plugins) close(ctx context.Context) {
	if ps == nil {
		return
	}
	closeEntries(ctx, ps.entries)
}

// closeEntries flushes the log sinks among es (bounded) and stops their
// plugins.
func closeEntries(ctx context.Context, es []*pluginEntry) {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, e := range es {
		if e.logs != nil {
			_ = e.logs.Flush(fctx)
			e.logs.Close()
		}
		if e.link != nil {
			e.link.Close()
		}
	}
	var wg sync.WaitGroup
	for _, e := range es {
		wg.Add(1)
		go func() { defer wg.Done(); e.host.Close() }()
	}
	wg.Wait()
}

// pluginsReady reports the first plugin that is down.
func (ps *plugins) down() string {
	if ps == nil {
		return ""
	}
	for _, st := range ps.states() {
		if !st.Up {
			return fmt.Sprintf("plugin %s %q down", st.Kind, st.Name)
		}
	}
	if ps.adapter != nil {
		if why := ps.adapter.Degraded(); why != "" {
			return "cluster adapter degraded: " + why
		}
	}
	if ps.link != nil && ps.link.Failing() {
		return "cluster adapter degraded: publishing fails"
	}
	return ""
}

// logHook hands log entries to the log-sink plugins without ever blocking
// the caller: a full buffer drops the entry and counts it.
type logHook struct {
	bufs func() []*pluginhost.LogBuffer // those of the generation serving
}

func (h logHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h logHook) Fire(e *logrus.Entry) error {
	bufs := h.bufs()
	if len(bufs) == 0 {
		return nil
	}
	fields, err := json.Marshal(e.Data)
	if err != nil {
		fields = []byte("{}")
	}
	entry := sdk.LogEntry{Time: e.Time, Level: e.Level.String(), Message: e.Message, Fields: fields}
	for _, b := range bufs {
		b.Add(entry)
	}
	return nil
}

// configureDiag turns a plugin's refusal of its block into one diagnostic:
// at the attribute the plugin named (sdk.AttrError) when the block sets
// it, otherwise at the block, with the plugin's message said once (not
// behind the host's and the shim's prefixes).
func configureDiag(pb *config.PluginBlock, err error) *hcl.Diagnostic {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Plugin refused its configuration",
		Detail: err.Error(), Subject: pb.DeclRange.Ptr()}
	var pe *sdk.PluginError
	if !errors.As(err, &pe) {
		return d
	}
	d.Detail = fmt.Sprintf("The %s plugin %q says: %s", pb.Kind, pb.Name, pe.Message)
	if pe.Attribute == "" {
		return d
	}
	if attr := attribute(pb.Body, pe.Attribute); attr != nil {
		d.Summary = fmt.Sprintf("Invalid value for %s", pe.Attribute)
		d.Subject = attr.Expr.Range().Ptr()
		d.Context = attr.Range.Ptr()
		return d
	}
	d.Detail = fmt.Sprintf("The %s plugin %q says about %s (not set in the block): %s", pb.Kind, pb.Name, pe.Attribute, pe.Message)
	return d
}

// attribute finds an attribute of a plugin block's body, nil if unset.
func attribute(body hcl.Body, name string) *hcl.Attribute {
	if sb, ok := body.(*hclsyntax.Body); ok {
		if a := sb.Attributes[name]; a != nil {
			return a.AsHCLAttribute()
		}
		return nil
	}
	attrs, _ := body.JustAttributes()
	return attrs[name]
}
