package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/socketfleet/socketfleet/sdk"
)

// Loaded is a config file as a running instance holds it: the parsed
// config, the bytes it was parsed from and their hash (what /health shows
// and every log line after a reload carries).
type Loaded struct {
	*Config
	Source []byte
	Hash   string // the first 12 hex digits of the file's SHA-256
}

// LoadFile reads and parses path like Load, keeping the source and its
// hash: a reload compares plugin blocks by their text.
func LoadFile(path string) (*Loaded, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read config file", Detail: err.Error()}}
	}
	cfg, diags := Parse(src, path)
	if diags.HasErrors() {
		return nil, diags
	}
	return &Loaded{Config: cfg, Source: src, Hash: Hash(src)}, diags
}

// Hash is the short hash of a config file's bytes.
func Hash(src []byte) string {
	sum := sha256.Sum256(src)
	return hex.EncodeToString(sum[:6])
}

// PluginSource is the text of a plugin block (header and body) in src, the
// file it was parsed from: two blocks with the same text, kind and
// folder configure their plugin the same way (env() reads the process's
// environment, which a reload does not change).
func PluginSource(pb *PluginBlock, src []byte) string {
	start, end := pb.DeclRange.Start.Byte, pb.DeclRange.End.Byte
	if sb, ok := pb.Body.(*hclsyntax.Body); ok {
		end = sb.SrcRange.End.Byte
	}
	if start < 0 || end > len(src) || start > end {
		return ""
	}
	return string(src[start:end])
}

// Inherit carries into next what a reload keeps from prev: the generated
// instance id when neither the file nor INSTANCE_ID sets one, and the
// indexes of event rules (CarryRuleIndexes). Call it before Refusals.
func Inherit(prev, next *Loaded) {
	if os.Getenv("INSTANCE_ID") == "" {
		file, _ := hclsyntax.ParseConfig(next.Source, next.Filename, hcl.InitialPos)
		if r := settingRange(file, "server", "instance_id"); r == nil || !attrAt(file, r) {
			next.Server.InstanceID = prev.Server.InstanceID
		}
	}
	CarryRuleIndexes(prev.Config, next.Config)
}

// attrAt reports whether r is an attribute's range (settingRange falls back
// to the block when the attribute is not written).
func attrAt(file *hcl.File, r *hcl.Range) bool {
	body, ok := file.Body.(*hclsyntax.Body)
	if !ok {
		return false
	}
	for _, b := range body.Blocks {
		if b.Type == "server" {
			a := b.Body.Attributes["instance_id"]
			return a != nil && a.SrcRange == *r
		}
	}
	return false
}

// CarryRuleIndexes gives the event rules of next the indexes the rules of
// the same namespace and event had in prev, and new rules indexes above
// every old one: per-socket state kept by index (rate-limit buckets)
// carries over a reload to the same rule, whatever its place in the file.
func CarryRuleIndexes(prev, next *Config) {
	for _, ns := range next.Namespaces {
		old := prev.Namespace(ns.Name)
		top := 0
		if old != nil {
			for _, r := range old.Events {
				top = max(top, r.Index+1)
			}
		}
		// Map iteration order is random: number the new rules in file order.
		fresh := make([]*EventRule, 0, len(ns.Events))
		for name, r := range ns.Events {
			if old != nil && old.Events[name] != nil {
				r.Index = old.Events[name].Index
				continue
			}
			fresh = append(fresh, r)
		}
		slices.SortFunc(fresh, func(a, b *EventRule) int { return a.Index - b.Index })
		for i, r := range fresh {
			r.Index = top + i
		}
	}
}

// fixed is a setting a running instance cannot change: the attribute's
// path in the file (for the message and its position) and how to read it.
type fixed struct {
	block, attr string // attr "" = the whole block
	get         func(c *Config) any
	why         string
}

var fixedSettings = []fixed{
	{"server", "listen", func(c *Config) any { return c.Server.Listen }, "the listener is open"},
	{"server", "path", func(c *Config) any { return c.Server.Path }, "clients are connected under it"},
	{"server", "engineio_echo", func(c *Config) any { return c.Server.EngineIOEcho }, "the endpoint is mounted at start"},
	{"server", "transports", func(c *Config) any { return c.Server.Transports }, "sessions are open on them"},
	{"server", "instance_id", func(c *Config) any { return c.Server.InstanceID }, "other instances and cookies know this instance by it"},
	{"server", "plugin_dir", func(c *Config) any { return c.Server.PluginDir }, "running plugins were found there"},
	{"server", "log_format", func(c *Config) any { return c.Server.LogFormat }, "log consumers parse one format"},
	{"server", "max_payload", func(c *Config) any { return c.Server.MaxPayload }, "clients were told it at their handshake"},
	{"server", "upgrade_timeout", func(c *Config) any { return c.Server.UpgradeTimeout }, "the Engine.IO layer is built with it"},
	{"server", "connect_timeout", func(c *Config) any { return c.Server.ConnectTimeout }, "the Socket.IO layer is built with it"},
	{"server", "ack_timeout", func(c *Config) any { return c.Server.AckTimeout }, "the Socket.IO layer is built with it"},
	{"server", "max_attachments", func(c *Config) any { return c.Server.MaxAttachments }, "the Socket.IO layer is built with it"},
	{"server", "send_queue", func(c *Config) any { return c.Server.SendQueue }, "the Engine.IO layer is built with it"},
	{"server", "memory_report_interval", func(c *Config) any { return c.Server.MemoryReportInterval }, "the memory monitor is started with it"},
	// The rest of the limits block applies at a reload (core/server's reload.go).
	{"limits", "max_head_bytes", func(c *Config) any { return c.Server.Limits.MaxHeadBytes }, "the HTTP server is built with it"},
	{"limits", "idle_timeout", func(c *Config) any { return c.Server.Limits.IdleTimeout }, "the HTTP server is built with it"},
	{"recovery", "", func(c *Config) any {
		return blockKey(c.Server.Recovery, func(r *Recovery) *hcl.Range { return &r.Range })
	}, "sessions and the replay buffer are kept by it"},
	{"api", "", func(c *Config) any { return c.Server.API != nil }, "the API endpoints are mounted at start (its token and redact_auth may change)"},
	{"tls", "", func(c *Config) any { return blockKey(c.Server.TLS, func(t *TLS) *hcl.Range { return &t.DeclRange }) }, "the listeners were wrapped at start (the certificate files' contents are reloaded whenever they change)"},
}

// blockKey is a block's settings without where they are written (a
// moved block is the same block); nil when the block is absent.
func blockKey[T any](b *T, where func(*T) *hcl.Range) any {
	if b == nil {
		return nil
	}
	k := *b
	*where(&k) = hcl.Range{}
	return k
}

func adminRange(a *Admin) *hcl.Range { return &a.DeclRange }

// Refusals lists what a running instance started from prev would refuse
// in next: settings that cannot change while it serves, each an error at
// the attribute (or block) in next's file, naming it. src is next's
// source, for the positions. Nothing else differs in what a reload
// accepts and what a start accepts.
func Refusals(prevFile, nextFile *Loaded) hcl.Diagnostics {
	prev, next, src := prevFile.Config, nextFile.Config, nextFile.Source
	var diags hcl.Diagnostics
	var file *hcl.File
	for _, f := range fixedSettings {
		a, b := f.get(prev), f.get(next)
		if reflect.DeepEqual(a, b) {
			continue
		}
		if file == nil {
			file, _ = hclsyntax.ParseConfig(src, next.Filename, hcl.InitialPos)
		}
		name := f.block
		if f.block != "server" {
			name = "server." + f.block
		}
		if f.attr != "" {
			name += "." + f.attr
		}
		d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot change " + name + " at run time",
			Detail: fmt.Sprintf("%s differs from the running config, and a running instance cannot change it (%s). "+
				"Restart the instance (a drain) to apply it, or put the running value back; nothing of this reload was applied.", name, f.why),
			Subject: settingRange(file, f.block, f.attr)}
		diags = append(diags, d)
	}
	// A changed adapter block is handed over to a new process (core/server's
	// handover.go); adding or removing one, or changing it under
	// connection state recovery (the adapter keeps the sessions and numbers
	// the broadcasts), is not.
	if a, b := prev.Plugin(sdk.KindAdapter), next.Plugin(sdk.KindAdapter); (a == nil) != (b == nil) ||
		(a != nil && next.Server.Recovery != nil && PluginSource(a, prevFile.Source) != PluginSource(b, src)) {
		where := (*hcl.Range)(nil)
		if b != nil {
			where = b.DeclRange.Ptr()
		} else {
			where = a.DeclRange.Ptr()
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot change the adapter block at run time",
			Detail: "A reload hands a changed adapter block over to a new process, but does not add or remove the adapter, nor change it under connection state recovery (the adapter keeps the sessions and numbers the broadcasts). " +
				"Restart the instance (a drain) to change it; nothing of this reload was applied.", Subject: where})
	}
	// The admin namespace and its sessions are set up at start.
	if !reflect.DeepEqual(blockKey(prev.Admin, adminRange), blockKey(next.Admin, adminRange)) {
		where := (*hcl.Range)(nil)
		if next.Admin != nil {
			where = next.Admin.DeclRange.Ptr()
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot change the admin block at run time",
			Detail: "The Admin UI's namespace, its logins and sessions are set up at start. " +
				"Restart the instance (a drain) to change it, or put the running block back; nothing of this reload was applied.", Subject: where})
	}
	for _, pb := range next.Plugins {
		if pb.Kind != sdk.KindMetrics {
			continue
		}
		if old := prev.Plugin(pb.Kind); old != nil && old.Listen != pb.Listen {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot change metrics.listen at run time",
				Detail: "The metrics listener is open; restart the instance to move it.", Subject: pb.DeclRange.Ptr()})
		}
	}
	return diags
}

// settingRange finds where a setting is written: the attribute in the
// server block or in one of its blocks (server.limits.idle_timeout), else
// that block, else the server
// block, else nil (the setting is at its default).
func settingRange(file *hcl.File, block, attr string) *hcl.Range {
	if file == nil {
		return nil
	}
	body, ok := file.Body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	for _, b := range body.Blocks {
		if b.Type != "server" {
			continue
		}
		if block == "server" {
			if a := b.Body.Attributes[attr]; a != nil {
				r := a.SrcRange
				return &r
			}
			r := b.DefRange()
			return &r
		}
		for _, inner := range b.Body.Blocks {
			if inner.Type == block {
				if a := inner.Body.Attributes[attr]; attr != "" && a != nil {
					r := a.SrcRange
					return &r
				}
				r := inner.DefRange()
				return &r
			}
		}
		r := b.DefRange()
		return &r
	}
	return nil
}

// Reload is the server block's `reload { watch = true }`: reload when the
// config file's contents change (checked every Interval), besides SIGHUP
// and POST /api/v1/reload.
type Reload struct {
	Watch    bool
	Interval time.Duration // default 1s
}

var reloadSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "watch"}, {Name: "interval"}}}

func (d *decoder) reloadBlock(b *hcl.Block) Reload {
	r := Reload{Interval: time.Second}
	if b == nil {
		return r
	}
	c := d.content(b.Body, reloadSchema)
	d.boolean(c.Attributes["watch"], &r.Watch)
	d.duration(c.Attributes["interval"], &r.Interval, true)
	return r
}
