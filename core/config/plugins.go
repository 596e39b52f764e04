package config

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/sdk"
)

// PluginBlock is a plugin selection such as `auth "jwt" { ... }`. The
// attributes the core reads itself (command, sha256, call_timeout) are
// decoded here; the rest of the body belongs to the plugin and is decoded
// with the schema the plugin declares (DecodeBody), once it is running.
type PluginBlock struct {
	Kind sdk.Kind
	Name string
	// Command is the explicit binary path, a relative one resolved against
	// ConfigDir; "" = <plugin_dir>/<kind>-<name>.
	Command     string
	SHA256      string        // optional pin, lower-case hex
	CallTimeout time.Duration // per call
	// Listen (metrics blocks only) serves /metrics on its own "host:port"
	// instead of the main listener; "" = the main listener.
	Listen    string
	Body      hcl.Body // the plugin's own attributes
	DeclRange hcl.Range
	// ConfigDir is the absolute folder of the file the block is in: the
	// plugin resolves its own relative paths against it (sdk.ResolvePath).
	ConfigDir string
}

// Where names the block and its position for error messages.
func (p *PluginBlock) Where() string {
	return fmt.Sprintf("%s %q block at %s", p.Kind, p.Name, rangeStart(p.DeclRange))
}

// pluginKinds maps block types to kinds; only log_sink may repeat.
var pluginKinds = map[string]sdk.Kind{
	"auth":     sdk.KindAuth,
	"adapter":  sdk.KindAdapter,
	"sharding": sdk.KindSharding,
	"metrics":  sdk.KindMetrics,
	"log_sink": sdk.KindLogSink,
}

var pluginReservedSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "command"}, {Name: "sha256"}, {Name: "call_timeout"}},
}

// metricsReservedSchema adds what only a metrics block has.
var metricsReservedSchema = &hcl.BodySchema{
	Attributes: append(append([]hcl.AttributeSchema(nil), pluginReservedSchema.Attributes...), hcl.AttributeSchema{Name: "listen"}),
}

func (d *decoder) plugins(blocks hcl.Blocks, cfg *Config) {
	seen := map[string]*PluginBlock{}
	for _, b := range blocks {
		kind, ok := pluginKinds[b.Type]
		if !ok {
			continue
		}
		pb := &PluginBlock{Kind: kind, Name: b.Labels[0], CallTimeout: pluginhost.DefaultCallTimeout, DeclRange: b.DefRange,
			ConfigDir: configDir(b.DefRange.Filename)}
		if pb.Name == "" || strings.ContainsAny(pb.Name, "/\\ ") {
			d.errorf(b.LabelRanges[0].Ptr(), b.DefRange.Ptr(), "Invalid plugin name",
				"A plugin name is a simple word such as \"jwt\"; it names the binary %s.", pluginhost.BinaryName(kind, "<name>"))
			continue
		}
		reserved := pluginReservedSchema
		if kind == sdk.KindMetrics {
			reserved = metricsReservedSchema
		}
		content, rest, diags := b.Body.PartialContent(reserved)
		d.diags = append(d.diags, diags...)
		pb.Body = rest
		if a := content.Attributes["command"]; a != nil && d.str(a, &pb.Command) && pb.Command != "" && !filepath.IsAbs(pb.Command) {
			// As the operator reads it: next to the config, wherever the server was started.
			pb.Command = filepath.Join(pb.ConfigDir, pb.Command)
		}
		if a := content.Attributes["sha256"]; a != nil {
			if d.str(a, &pb.SHA256) {
				pb.SHA256 = strings.ToLower(pb.SHA256)
				if raw, err := hex.DecodeString(pb.SHA256); err != nil || len(raw) != 32 {
					d.attrError(a, "Invalid sha256", "sha256 must be 64 hexadecimal digits (the output of sha256sum).")
				}
			}
		}
		if a := content.Attributes["call_timeout"]; a != nil {
			d.duration(a, &pb.CallTimeout, true)
		}
		if a := content.Attributes["listen"]; a != nil && d.str(a, &pb.Listen) && pb.Listen != "" {
			if _, _, err := net.SplitHostPort(pb.Listen); err != nil {
				d.attrError(a, "Invalid listen address", "listen must be \"host:port\" (e.g. \"127.0.0.1:9100\"): %v.", err)
			}
		}
		key := b.Type
		if kind == sdk.KindLogSink {
			key += "." + pb.Name
		}
		if prev := seen[key]; prev != nil {
			what := fmt.Sprintf("Only one %s block is allowed", b.Type)
			if kind == sdk.KindLogSink {
				what = fmt.Sprintf("log_sink %q is declared twice", pb.Name)
			}
			d.errorf(b.DefRange.Ptr(), nil, "Duplicate plugin block", "%s; the first is at %s.", what, rangeStart(prev.DeclRange))
			continue
		}
		seen[key] = pb
		cfg.Plugins = append(cfg.Plugins, pb)
	}
}

// configDir is the absolute folder of the config file filename.
func configDir(filename string) string {
	dir := filepath.Dir(filename)
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// BinaryName is the file name the plugin is looked up as (pluginhost owns the rule).
func (p *PluginBlock) BinaryName() string { return pluginhost.BinaryName(p.Kind, p.Name) }

// Plugin returns the block of a kind (the first, for log_sink), or nil.
func (c *Config) Plugin(kind sdk.Kind) *PluginBlock {
	for _, p := range c.Plugins {
		if p.Kind == kind {
			return p
		}
	}
	return nil
}

// DecodeBody decodes the plugin's own attributes with the schema the plugin
// declared, into the JSON object the plugin's Configure receives. Unknown
// attributes, missing required ones and wrong types are diagnostics at
// their positions in the file.
func (p *PluginBlock) DecodeBody(schema sdk.Schema) (sdk.Config, hcl.Diagnostics) {
	hs := &hcl.BodySchema{}
	for _, a := range schema.Attributes {
		hs.Attributes = append(hs.Attributes, hcl.AttributeSchema{Name: a.Name, Required: a.Required})
	}
	content, diags := p.Body.Content(hs)
	d := &decoder{ctx: NewEvalContext(nil), diags: diags}
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	for _, a := range schema.Attributes {
		attr := content.Attributes[a.Name]
		if attr == nil {
			continue
		}
		raw, ok := d.pluginValue(attr, a)
		if !ok {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		name, _ := json.Marshal(a.Name)
		buf.Write(name)
		buf.WriteByte(':')
		buf.Write(raw)
	}
	buf.WriteByte('}')
	if d.diags.HasErrors() {
		return nil, d.diags
	}
	return sdk.Config(buf.Bytes()), d.diags
}

// pluginValue evaluates one plugin attribute and encodes it as JSON.
func (d *decoder) pluginValue(attr *hcl.Attribute, a sdk.Attribute) ([]byte, bool) {
	var ty cty.Type
	switch a.Type {
	case sdk.TypeString:
		ty = cty.String
	case sdk.TypeNumber:
		ty = cty.Number
	case sdk.TypeBool:
		ty = cty.Bool
	case sdk.TypeListString:
		ty = cty.List(cty.String)
	case sdk.TypeMapString:
		ty = cty.Map(cty.String)
	case sdk.TypeDuration:
		var dur time.Duration
		n := len(d.diags)
		d.duration(attr, &dur, false)
		if len(d.diags) > n && d.diags[n:].HasErrors() {
			return nil, false
		}
		b, _ := json.Marshal(dur.String())
		return b, true
	case sdk.TypeSize:
		var size int64
		n := len(d.diags)
		d.size(attr, &size)
		if len(d.diags) > n && d.diags[n:].HasErrors() {
			return nil, false
		}
		b, _ := json.Marshal(size)
		return b, true
	default:
		d.attrError(attr, "Plugin schema error", "The plugin declares attribute %q with unknown type %q.", a.Name, a.Type)
		return nil, false
	}
	v, diags := attr.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return nil, false
	}
	v, err := convert.Convert(v, ty)
	if err != nil || v.IsNull() || !v.IsWhollyKnown() {
		d.attrError(attr, "Incorrect attribute value type", "%s must be a %s.", a.Name, a.Type)
		return nil, false
	}
	b, err := ValueToJSON(v)
	if err != nil {
		d.attrError(attr, "Invalid value", "%s", err)
		return nil, false
	}
	return b, true
}
