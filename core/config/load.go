package config

import (
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Load reads and parses the config file at path. On errors the returned
// Config is nil; warnings may accompany a valid Config.
func Load(path string) (*Config, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read config file",
			Detail:   err.Error(),
		}}
	}
	return Parse(src, path)
}

// Parse parses config source; filename is used in diagnostics. Environment
// variables are read here (env(), INSTANCE_ID, LOG_LEVEL).
func Parse(src []byte, filename string) (*Config, hcl.Diagnostics) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	d := &decoder{ctx: NewEvalContext(nil), diags: diags}
	cfg := d.root(file.Body, filename)
	if d.diags.HasErrors() {
		return nil, d.diags
	}
	return cfg, d.diags
}

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "server"},
		{Type: "namespace", LabelNames: []string{"name"}},
		{Type: "auth", LabelNames: []string{"name"}},
		{Type: "adapter", LabelNames: []string{"name"}},
		{Type: "sharding", LabelNames: []string{"name"}},
		{Type: "metrics", LabelNames: []string{"name"}},
		{Type: "log_sink", LabelNames: []string{"name"}},
		{Type: "admin"},
	},
}

func (d *decoder) root(body hcl.Body, filename string) *Config {
	cfg := &Config{Filename: filename}
	c := d.content(body, rootSchema)
	d.server(d.single(c.Blocks, "server", "the config file"), &cfg.Server)
	d.plugins(c.Blocks, cfg)
	cfg.Admin = d.admin(d.single(c.Blocks, "admin", "the config file"))

	seen := map[string]*Namespace{}
	for _, b := range c.Blocks {
		if b.Type != "namespace" {
			continue
		}
		ns := d.namespace(b)
		if ns == nil {
			continue
		}
		if prev := seen[ns.Name]; prev != nil {
			d.errorf(b.LabelRanges[0].Ptr(), b.DefRange.Ptr(), "Duplicate namespace",
				"Namespace %q is already declared at %s.", ns.Name, rangeStart(prev.DeclRange))
			continue
		}
		seen[ns.Name] = ns
		cfg.Namespaces = append(cfg.Namespaces, ns)
	}
	if ns := seen[AdminNamespace]; ns != nil && cfg.Admin != nil {
		d.errorf(ns.DeclRange.Ptr(), nil, "Namespace taken by the admin block",
			"The admin block serves the namespace %q; rename this one.", AdminNamespace)
	}
	if seen["/"] == nil {
		cfg.Namespaces = append(cfg.Namespaces, &Namespace{Name: "/", UnknownEvents: "drop", Events: map[string]*EventRule{},
			ServerEvents: map[string]*ServerEvent{}})
	}
	return cfg
}
