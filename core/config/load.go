package config

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/socketfleet/socketfleet/core/pluginhost"
)

// Defaults of the server block.
const (
	DefaultListen         = ":8081"
	DefaultPath           = "/socket.io/"
	DefaultPingInterval   = 25 * time.Second
	DefaultPingTimeout    = 20 * time.Second
	DefaultUpgradeTimeout = 10 * time.Second
	DefaultConnectTimeout = 45 * time.Second
	DefaultAckTimeout     = 10 * time.Second
	DefaultMaxPayload     = 1000000
	DefaultMaxAttachments = 10
	DefaultSendQueue      = 1024
	DefaultLogLevel       = "info"
	DefaultLogFormat      = "json"
	DefaultSessionCookie  = "io"
	DefaultInstanceCookie = "sf_instance"
)

// ReservedEvents are Socket.IO's reserved event names; they cannot be used as
// event rules or emitted.
var ReservedEvents = []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}

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

type decoder struct {
	ctx   *hcl.EvalContext // load time: functions, no variables
	diags hcl.Diagnostics
}

func (d *decoder) errorf(subject *hcl.Range, context *hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  subject,
		Context:  context,
	})
}

// attrError reports a problem with an attribute's value.
func (d *decoder) attrError(attr *hcl.Attribute, summary, format string, args ...any) {
	d.errorf(attr.Expr.Range().Ptr(), attr.Range.Ptr(), summary, format, args...)
}

func (d *decoder) content(body hcl.Body, schema *hcl.BodySchema) *hcl.BodyContent {
	c, diags := body.Content(schema)
	d.diags = append(d.diags, diags...)
	return c
}

// single returns the first block of a type, reporting any further ones.
func (d *decoder) single(blocks hcl.Blocks, typ, parent string) *hcl.Block {
	var first *hcl.Block
	for _, b := range blocks {
		if b.Type != typ {
			continue
		}
		if first == nil {
			first = b
			continue
		}
		d.errorf(b.DefRange.Ptr(), nil, "Duplicate "+typ+" block",
			"Only one %s block is allowed in %s; the first one is at %s.", typ, parent, rangeStart(first.DefRange))
	}
	return first
}

func rangeStart(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// ---- static (load-time) values ----

// value evaluates attr with the load-time context and converts it to ty. ok is
// false on errors and for null (null means "use the default").
func (d *decoder) value(attr *hcl.Attribute, ty cty.Type, what string) (cty.Value, bool) {
	if attr == nil {
		return cty.NilVal, false
	}
	v, diags := attr.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return cty.NilVal, false
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		d.attrError(attr, "Incorrect attribute value type", "Inappropriate value for attribute %q: %s required.", attr.Name, what)
		return cty.NilVal, false
	}
	if !cv.IsWhollyKnown() {
		d.attrError(attr, "Invalid attribute value", "The value of %q must be known when the config is loaded.", attr.Name)
		return cty.NilVal, false
	}
	return cv, true
}

func (d *decoder) str(attr *hcl.Attribute, dst *string) bool {
	v, ok := d.value(attr, cty.String, "string")
	if ok {
		*dst = v.AsString()
	}
	return ok
}

func (d *decoder) boolean(attr *hcl.Attribute, dst *bool) {
	if v, ok := d.value(attr, cty.Bool, "bool"); ok {
		*dst = v.True()
	}
}

func (d *decoder) strList(attr *hcl.Attribute, dst *[]string) bool {
	v, ok := d.value(attr, cty.List(cty.String), "list of strings")
	if !ok {
		return false
	}
	out := make([]string, 0, v.LengthInt())
	for _, e := range v.AsValueSlice() {
		if e.IsNull() {
			d.attrError(attr, "Invalid attribute value", "The list %q must not contain null.", attr.Name)
			return false
		}
		out = append(out, e.AsString())
	}
	*dst = out
	return true
}

func (d *decoder) integer(attr *hcl.Attribute, dst *int, min int) {
	v, ok := d.value(attr, cty.Number, "number")
	if !ok {
		return
	}
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	if !bf.IsInt() || acc != 0 || n > math.MaxInt32 {
		d.attrError(attr, "Invalid attribute value", "%q must be a whole number.", attr.Name)
		return
	}
	if n < int64(min) {
		d.attrError(attr, "Invalid attribute value", "%q must be at least %d; got %d.", attr.Name, min, n)
		return
	}
	*dst = int(n)
}

// duration parses a duration string; positive requires > 0, else >= 0.
func (d *decoder) duration(attr *hcl.Attribute, dst *time.Duration, positive bool) {
	var s string
	if !d.str(attr, &s) {
		return
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		d.attrError(attr, "Invalid duration", "%q is not a duration; use a number with a unit, such as \"300ms\", \"25s\" or \"1m30s\".", s)
		return
	}
	if positive && v <= 0 {
		d.attrError(attr, "Invalid duration", "%q must be greater than zero; got %q.", attr.Name, s)
		return
	}
	if v < 0 {
		d.attrError(attr, "Invalid duration", "%q must not be negative; got %q.", attr.Name, s)
		return
	}
	*dst = v
}

// size parses a byte size given as a number or a string with a unit; it must be > 0.
func (d *decoder) size(attr *hcl.Attribute, dst *int64) {
	if attr == nil {
		return
	}
	v, diags := attr.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return
	}
	var s string
	switch {
	case v.Type() == cty.Number && v.IsKnown():
		s = v.AsBigFloat().Text('f', -1)
	case v.Type() == cty.String && v.IsKnown():
		s = v.AsString()
	default:
		d.attrError(attr, "Incorrect attribute value type", "Inappropriate value for attribute %q: a size is required, as a number of bytes or a string such as \"16KB\" or \"1MiB\".", attr.Name)
		return
	}
	n, err := ParseSize(s)
	if err != nil {
		d.attrError(attr, "Invalid size", "%s", err)
		return
	}
	if n <= 0 {
		d.attrError(attr, "Invalid size", "%q must be greater than zero.", attr.Name)
		return
	}
	*dst = n
}

// oneOf checks that *dst (already decoded from attr) is one of the choices.
func (d *decoder) oneOf(attr *hcl.Attribute, val string, choices ...string) bool {
	for _, c := range choices {
		if val == c {
			return true
		}
	}
	d.attrError(attr, "Invalid attribute value", "%q must be one of %s; got %q.", attr.Name, quoteList(choices), val)
	return false
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// ---- schemas ----

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "server"},
		{Type: "namespace", LabelNames: []string{"name"}},
		{Type: "auth", LabelNames: []string{"name"}},
		{Type: "adapter", LabelNames: []string{"name"}},
		{Type: "sharding", LabelNames: []string{"name"}},
		{Type: "metrics", LabelNames: []string{"name"}},
		{Type: "log_sink", LabelNames: []string{"name"}},
	},
}

var serverSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "listen"}, {Name: "path"}, {Name: "transports"},
		{Name: "ping_interval"}, {Name: "ping_timeout"}, {Name: "upgrade_timeout"},
		{Name: "connect_timeout"}, {Name: "ack_timeout"},
		{Name: "max_payload"}, {Name: "max_attachments"}, {Name: "send_queue"},
		{Name: "engineio_echo"}, {Name: "instance_id"},
		{Name: "log_level"}, {Name: "log_format"}, {Name: "plugin_dir"},
		{Name: "memory_report_interval"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "cors"}, {Type: "session_cookie"}, {Type: "instance_cookie"},
		{Type: "drain"}, {Type: "load_shedding"}, {Type: "api"},
	},
}

var apiSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "token", Required: true}},
}

var corsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "allowed_origins"}, {Name: "credentials"}},
}

var cookieSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "name"}, {Name: "path"}, {Name: "http_only"}, {Name: "secure"}, {Name: "same_site"}, {Name: "max_age"},
	},
}

var namespaceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "unknown_events"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "on_connect"},
		{Type: "event", LabelNames: []string{"name"}},
		{Type: "server_event", LabelNames: []string{"name"}},
	},
}

var serverEventSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "ack"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "broadcast"}},
}

var serverBroadcastSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "to"}, {Name: "event"}, {Name: "args"}},
}

var serverEmitSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "event"}, {Name: "args"}},
}

var onConnectSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "emit", LabelNames: []string{"event"}}},
}

var emitSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "args"}},
}

var eventSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "max_size"}, {Name: "rate_limit"}, {Name: "rate_burst"}, {Name: "ack"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "join"}, {Type: "leave"}, {Type: "broadcast"}, {Type: "server_emit"}, {Type: "reply"},
	},
}

var roomSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "room", Required: true}, {Name: "allow"}},
}

var broadcastSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "to"}, {Name: "event"}, {Name: "args"}, {Name: "except_sender"}, {Name: "require_member"},
	},
}

var replySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "event", Required: true}, {Name: "args"}},
}

// ---- blocks ----

func (d *decoder) root(body hcl.Body, filename string) *Config {
	cfg := &Config{Filename: filename}
	c := d.content(body, rootSchema)
	d.server(d.single(c.Blocks, "server", "the config file"), &cfg.Server)
	d.plugins(c.Blocks, cfg)

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
	if seen["/"] == nil {
		cfg.Namespaces = append(cfg.Namespaces, &Namespace{Name: "/", UnknownEvents: "drop", Events: map[string]*EventRule{},
			ServerEvents: map[string]*ServerEvent{}})
	}
	return cfg
}

func (d *decoder) server(b *hcl.Block, s *Server) {
	*s = Server{
		Listen:               DefaultListen,
		Path:                 DefaultPath,
		Transports:           []string{"polling", "websocket"},
		PingInterval:         DefaultPingInterval,
		PingTimeout:          DefaultPingTimeout,
		UpgradeTimeout:       DefaultUpgradeTimeout,
		ConnectTimeout:       DefaultConnectTimeout,
		AckTimeout:           DefaultAckTimeout,
		MaxPayload:           DefaultMaxPayload,
		MaxAttachments:       DefaultMaxAttachments,
		SendQueue:            DefaultSendQueue,
		LogLevel:             DefaultLogLevel,
		LogFormat:            DefaultLogFormat,
		PluginDir:            pluginhost.DefaultDir,
		MemoryReportInterval: 60 * time.Second,
	}
	var a hcl.Attributes = hcl.Attributes{}
	var blocks hcl.Blocks
	if b != nil {
		c := d.content(b.Body, serverSchema)
		a, blocks = c.Attributes, c.Blocks
	}

	if attr := a["listen"]; attr != nil && d.str(attr, &s.Listen) {
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			d.attrError(attr, "Invalid listen address", "%q is not a \"host:port\" address (e.g. \":8081\" or \"127.0.0.1:8081\"): %s.", s.Listen, err)
		}
	}
	if attr := a["path"]; attr != nil && d.str(attr, &s.Path) {
		s.Path = d.urlPath(attr, s.Path)
	}
	if attr := a["engineio_echo"]; attr != nil && d.str(attr, &s.EngineIOEcho) && s.EngineIOEcho != "" {
		s.EngineIOEcho = d.urlPath(attr, s.EngineIOEcho)
		if s.EngineIOEcho == s.Path {
			d.attrError(attr, "Invalid attribute value", "engineio_echo must differ from path (%q).", s.Path)
		}
	}
	if attr := a["transports"]; attr != nil && d.strList(attr, &s.Transports) {
		if len(s.Transports) == 0 {
			d.attrError(attr, "Invalid attribute value", "transports must name at least one of \"polling\", \"websocket\".")
		}
		dup := map[string]bool{}
		for i, t := range s.Transports {
			if t != "polling" && t != "websocket" {
				d.errorf(elemRange(attr, i).Ptr(), attr.Range.Ptr(), "Invalid attribute value",
					"Unknown transport %q; transports must be a non-empty subset of \"polling\", \"websocket\".", t)
			} else if dup[t] {
				d.errorf(elemRange(attr, i).Ptr(), attr.Range.Ptr(), "Invalid attribute value", "Transport %q is listed twice.", t)
			}
			dup[t] = true
		}
	}
	d.duration(a["ping_interval"], &s.PingInterval, true)
	d.duration(a["ping_timeout"], &s.PingTimeout, true)
	d.duration(a["upgrade_timeout"], &s.UpgradeTimeout, true)
	d.duration(a["connect_timeout"], &s.ConnectTimeout, true)
	d.duration(a["ack_timeout"], &s.AckTimeout, true)
	d.size(a["max_payload"], &s.MaxPayload)
	d.integer(a["max_attachments"], &s.MaxAttachments, 0)
	d.integer(a["send_queue"], &s.SendQueue, 1)
	d.str(a["instance_id"], &s.InstanceID)
	d.str(a["plugin_dir"], &s.PluginDir)
	if attr := a["log_level"]; attr != nil && d.str(attr, &s.LogLevel) {
		s.LogLevel = strings.ToLower(s.LogLevel)
		d.oneOf(attr, s.LogLevel, logLevels...)
	}
	if attr := a["log_format"]; attr != nil && d.str(attr, &s.LogFormat) {
		d.oneOf(attr, s.LogFormat, "json", "text")
	}

	if cb := d.single(blocks, "cors", "the server block"); cb != nil {
		c := d.content(cb.Body, corsSchema)
		if attr := c.Attributes["allowed_origins"]; attr != nil && d.strList(attr, &s.CORS.AllowedOrigins) {
			for i, o := range s.CORS.AllowedOrigins {
				if err := checkOrigin(o); err != nil {
					d.errorf(elemRange(attr, i).Ptr(), attr.Range.Ptr(), "Invalid origin", "%s.", err)
				}
			}
		}
		d.boolean(c.Attributes["credentials"], &s.CORS.Credentials)
	}
	d.drain(d.single(blocks, "drain", "the server block"), &s.Drain)
	s.LoadShedding = d.shedding(d.single(blocks, "load_shedding", "the server block"))
	d.duration(a["memory_report_interval"], &s.MemoryReportInterval, false)
	s.API = d.api(d.single(blocks, "api", "the server block"))
	s.SessionCookie = d.cookie(d.single(blocks, "session_cookie", "the server block"), DefaultSessionCookie)
	ib := d.single(blocks, "instance_cookie", "the server block")
	s.InstanceCookie = d.cookie(ib, DefaultInstanceCookie)
	if s.SessionCookie != nil && s.InstanceCookie != nil && s.SessionCookie.Name == s.InstanceCookie.Name {
		d.errorf(ib.DefRange.Ptr(), nil, "Duplicate cookie name",
			"session_cookie and instance_cookie both use the name %q.", s.SessionCookie.Name)
	}

	// Environment.
	if s.InstanceID == "" {
		s.InstanceID = os.Getenv("INSTANCE_ID")
	}
	if s.InstanceID == "" {
		var buf [4]byte
		_, _ = rand.Read(buf[:])
		s.InstanceID = "instance-" + hex.EncodeToString(buf[:])
	}
	if lvl := strings.ToLower(strings.TrimSpace(os.Getenv("LOG_LEVEL"))); lvl != "" {
		if contains(logLevels, lvl) {
			s.LogLevel = lvl
		} else {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid LOG_LEVEL environment variable",
				Detail:   fmt.Sprintf("LOG_LEVEL=%q must be one of %s.", lvl, quoteList(logLevels)),
			})
		}
	}
}

var logLevels = []string{"trace", "debug", "info", "warn", "warning", "error", "fatal", "panic"}

func contains(xs []string, x string) bool {
	for _, e := range xs {
		if e == x {
			return true
		}
	}
	return false
}

// elemRange is the range of element i of a list attribute written as a
// tuple, else the range of the whole value.
func elemRange(attr *hcl.Attribute, i int) hcl.Range {
	if elems, diags := hcl.ExprList(attr.Expr); !diags.HasErrors() && i < len(elems) {
		return elems[i].Range()
	}
	return attr.Expr.Range()
}

// urlPath checks an endpoint path and normalizes it to end with "/".
func (d *decoder) urlPath(attr *hcl.Attribute, p string) string {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# \t") {
		d.attrError(attr, "Invalid path", "%q must be a URL path starting with \"/\", e.g. \"/socket.io/\".", attr.Name)
		return p
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("%q is not an origin; use \"*\" or scheme://host[:port] without a path, e.g. \"https://chat.example.com\"", o)
	}
	return nil
}

func (d *decoder) api(b *hcl.Block) *API {
	if b == nil {
		return nil
	}
	api := &API{DeclRange: b.DefRange}
	c := d.content(b.Body, apiSchema)
	if attr := c.Attributes["token"]; attr != nil && d.str(attr, &api.Token) {
		if len(api.Token) < MinAPITokenLength || strings.TrimSpace(api.Token) != api.Token {
			d.attrError(attr, "Invalid API token",
				"The API token must be at least %d characters without surrounding spaces (got %d); generate one with `openssl rand -hex 32` and pass it with env(\"API_TOKEN\").",
				MinAPITokenLength, len(api.Token))
		}
	}
	return api
}

func (d *decoder) cookie(b *hcl.Block, defaultName string) *Cookie {
	if b == nil {
		return nil
	}
	ck := &Cookie{Name: defaultName, Path: "/", HTTPOnly: true, SameSite: "lax"}
	c := d.content(b.Body, cookieSchema)
	a := c.Attributes
	if attr := a["name"]; attr != nil && d.str(attr, &ck.Name) {
		if ck.Name == "" || strings.ContainsAny(ck.Name, "()<>@,;:\\\"/[]?={} \t") {
			d.attrError(attr, "Invalid cookie name", "%q is not a valid cookie name.", ck.Name)
		}
	}
	if attr := a["path"]; attr != nil && d.str(attr, &ck.Path) && !strings.HasPrefix(ck.Path, "/") {
		d.attrError(attr, "Invalid path", "The cookie path must start with \"/\".")
	}
	d.boolean(a["http_only"], &ck.HTTPOnly)
	d.boolean(a["secure"], &ck.Secure)
	if attr := a["same_site"]; attr != nil && d.str(attr, &ck.SameSite) {
		ck.SameSite = strings.ToLower(ck.SameSite)
		if d.oneOf(attr, ck.SameSite, "lax", "strict", "none") && ck.SameSite == "none" && !ck.Secure {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "SameSite=None without Secure",
				Detail:   "Browsers reject SameSite=None cookies that are not Secure; set secure = true.",
				Subject:  attr.Expr.Range().Ptr(),
				Context:  attr.Range.Ptr(),
			})
		}
	}
	d.duration(a["max_age"], &ck.MaxAge, false)
	return ck
}

func (d *decoder) namespace(b *hcl.Block) *Namespace {
	name := b.Labels[0]
	ns := &Namespace{Name: name, UnknownEvents: "drop", Events: map[string]*EventRule{},
		ServerEvents: map[string]*ServerEvent{}, DeclRange: b.DefRange}
	if !strings.HasPrefix(name, "/") || strings.ContainsAny(name, ", \t\r\n?#") {
		d.errorf(b.LabelRanges[0].Ptr(), b.DefRange.Ptr(), "Invalid namespace name",
			"Namespace names start with \"/\" and contain no commas, spaces, '?' or '#', e.g. \"/\" or \"/chat\"; got %q.", name)
	}
	c := d.content(b.Body, namespaceSchema)
	if attr := c.Attributes["unknown_events"]; attr != nil && d.str(attr, &ns.UnknownEvents) {
		d.oneOf(attr, ns.UnknownEvents, "drop", "disconnect")
	}
	if oc := d.single(c.Blocks, "on_connect", "a namespace block"); oc != nil {
		occ := d.content(oc.Body, onConnectSchema)
		for _, eb := range occ.Blocks {
			ev := eb.Labels[0]
			d.eventName(ev, eb.LabelRanges[0], eb.DefRange)
			ec := d.content(eb.Body, emitSchema)
			em := &Emit{Event: ev, Args: Args{Expr: hcl.StaticExpr(cty.EmptyTupleVal, eb.Body.MissingItemRange())}}
			if attr := ec.Attributes["args"]; attr != nil {
				em.Args = d.args(attr, "on_connect", ConnectVariables)
			}
			ns.OnConnect = append(ns.OnConnect, em)
		}
	}
	for _, eb := range c.Blocks {
		if eb.Type != "event" {
			continue
		}
		rule := d.event(eb)
		if prev := ns.Events[rule.Name]; prev != nil {
			d.errorf(eb.LabelRanges[0].Ptr(), eb.DefRange.Ptr(), "Duplicate event rule",
				"Event %q is already declared in namespace %q at %s.", rule.Name, name, rangeStart(prev.DeclRange))
			continue
		}
		ns.Events[rule.Name] = rule
	}
	for _, sb := range c.Blocks {
		if sb.Type != "server_event" {
			continue
		}
		se := d.serverEvent(sb)
		if prev := ns.ServerEvents[se.Name]; prev != nil {
			d.errorf(sb.LabelRanges[0].Ptr(), sb.DefRange.Ptr(), "Duplicate server_event block",
				"Server event %q is already declared in namespace %q at %s.", se.Name, name, rangeStart(prev.DeclRange))
			continue
		}
		ns.ServerEvents[se.Name] = se
	}
	return ns
}

// serverEvent decodes a server_event block: local broadcasts and an ack,
// over `args` only.
func (d *decoder) serverEvent(b *hcl.Block) *ServerEvent {
	se := &ServerEvent{Name: b.Labels[0], DeclRange: b.DefRange}
	d.eventName(se.Name, b.LabelRanges[0], b.DefRange)
	where := fmt.Sprintf("server_event %q", se.Name)
	c := d.content(b.Body, serverEventSchema)
	for _, bb := range c.Blocks {
		bc := d.content(bb.Body, serverBroadcastSchema)
		a := bc.Attributes
		br := &Broadcast{Event: se.Name, Args: Args{Passthrough: true}}
		if attr := a["to"]; attr != nil {
			br.To = d.runtime(attr.Expr, attr.Range, where, ServerEventVariables, checkRooms)
		}
		if attr := a["event"]; attr != nil && d.str(attr, &br.Event) {
			d.eventName(br.Event, attr.Expr.Range(), attr.Range)
		}
		if attr := a["args"]; attr != nil {
			br.Args = d.args(attr, where, ServerEventVariables)
		}
		se.Broadcasts = append(se.Broadcasts, br)
	}
	if attr := c.Attributes["ack"]; attr != nil {
		se.Ack = d.runtime(attr.Expr, attr.Range, where, ServerEventVariables, checkValue)
	}
	return se
}

func (d *decoder) eventName(name string, subject, context hcl.Range) {
	switch {
	case name == "":
		d.errorf(subject.Ptr(), context.Ptr(), "Invalid event name", "Event names must not be empty.")
	case contains(ReservedEvents, name):
		d.errorf(subject.Ptr(), context.Ptr(), "Reserved event name",
			"%q is reserved by Socket.IO; the reserved names are %s.", name, quoteList(ReservedEvents))
	}
}

func (d *decoder) event(b *hcl.Block) *EventRule {
	r := &EventRule{Name: b.Labels[0], DeclRange: b.DefRange}
	d.eventName(r.Name, b.LabelRanges[0], b.DefRange)
	c := d.content(b.Body, eventSchema)
	a := c.Attributes
	where := fmt.Sprintf("event %q", r.Name)

	d.size(a["max_size"], &r.MaxSize)
	if attr := a["rate_limit"]; attr != nil {
		var s string
		if d.str(attr, &s) {
			rate, err := ParseRate(s)
			if err != nil {
				d.attrError(attr, "Invalid rate limit", "%s", err)
			} else {
				r.RateLimit = rate
				r.RateBurst = max(1, int(math.Ceil(rate-1e-9)))
			}
		}
	}
	if attr := a["rate_burst"]; attr != nil {
		if a["rate_limit"] == nil {
			d.attrError(attr, "Invalid attribute", "rate_burst needs a rate_limit in the same event block.")
		} else {
			d.integer(attr, &r.RateBurst, 1)
		}
	}

	for _, typ := range []string{"join", "leave"} {
		rb := d.single(c.Blocks, typ, "an event block")
		if rb == nil {
			continue
		}
		ra := d.roomAction(rb, where)
		if typ == "join" {
			r.Join = ra
		} else {
			r.Leave = ra
		}
	}
	for _, bb := range c.Blocks {
		switch bb.Type {
		case "broadcast":
			r.Broadcasts = append(r.Broadcasts, d.broadcast(bb, r.Name, where))
		case "server_emit":
			sc := d.content(bb.Body, serverEmitSchema)
			em := &Emit{Event: r.Name, Args: Args{Passthrough: true}}
			if attr := sc.Attributes["event"]; attr != nil && d.str(attr, &em.Event) {
				d.eventName(em.Event, attr.Expr.Range(), attr.Range)
			}
			if attr := sc.Attributes["args"]; attr != nil {
				em.Args = d.args(attr, where, EventVariables)
			}
			r.ServerEmits = append(r.ServerEmits, em)
		}
	}
	if rb := d.single(c.Blocks, "reply", "an event block"); rb != nil {
		rc := d.content(rb.Body, replySchema)
		em := &Emit{Args: Args{Passthrough: true}}
		if attr := rc.Attributes["event"]; attr != nil && d.str(attr, &em.Event) {
			d.eventName(em.Event, attr.Expr.Range(), attr.Range)
		}
		if attr := rc.Attributes["args"]; attr != nil {
			em.Args = d.args(attr, where, EventVariables)
		}
		r.Reply = em
	}
	if attr := a["ack"]; attr != nil {
		args := d.args(attr, where, EventVariables)
		r.Ack = &args
	}
	return r
}

func (d *decoder) roomAction(b *hcl.Block, where string) *RoomAction {
	c := d.content(b.Body, roomSchema)
	ra := &RoomAction{}
	if attr := c.Attributes["room"]; attr != nil {
		ra.Room = d.runtime(attr.Expr, attr.Range, where, EventVariables, checkRooms)
	}
	if attr := c.Attributes["allow"]; attr != nil {
		elems, diags := hcl.ExprList(attr.Expr)
		if diags.HasErrors() {
			d.attrError(attr, "Invalid allow list", "allow must be a list written with brackets, e.g. [\"lobby\", \"room:*\", \"user:${auth.user}\"].")
		}
		for _, e := range elems {
			ra.Allow = append(ra.Allow, d.runtime(e, attr.Range, where, EventVariables, checkString))
		}
	}
	return ra
}

func (d *decoder) broadcast(b *hcl.Block, eventName, where string) *Broadcast {
	c := d.content(b.Body, broadcastSchema)
	a := c.Attributes
	bc := &Broadcast{Event: eventName, Args: Args{Passthrough: true}, RequireMember: true}
	if attr := a["to"]; attr != nil {
		bc.To = d.runtime(attr.Expr, attr.Range, where, EventVariables, checkRooms)
	}
	if attr := a["event"]; attr != nil && d.str(attr, &bc.Event) {
		d.eventName(bc.Event, attr.Expr.Range(), attr.Range)
	}
	if attr := a["args"]; attr != nil {
		bc.Args = d.args(attr, where, EventVariables)
	}
	d.boolean(a["except_sender"], &bc.ExceptSender)
	d.boolean(a["require_member"], &bc.RequireMember)
	return bc
}

// args decodes an args/ack attribute: the bare traversal `args` is passthrough.
func (d *decoder) args(attr *hcl.Attribute, where string, allowed []string) Args {
	if st, ok := attr.Expr.(*hclsyntax.ScopeTraversalExpr); ok && len(st.Traversal) == 1 &&
		st.Traversal.RootName() == VarArgs && contains(allowed, VarArgs) {
		return Args{Passthrough: true}
	}
	return Args{Expr: d.runtime(attr.Expr, attr.Range, where, allowed, checkArgs)}
}

// ---- runtime expressions ----

// typeCheck validates the (possibly unknown) value a runtime expression
// produced at load time; it returns a problem description or "".
type typeCheck func(v cty.Value) string

func checkString(v cty.Value) string {
	if v.IsNull() {
		return "must not be null"
	}
	if !v.Type().IsPrimitiveType() && v.Type() != cty.DynamicPseudoType {
		return "must be a string"
	}
	return ""
}

func checkRooms(v cty.Value) string {
	ty := v.Type()
	if v.IsNull() {
		return "must be a room name or a list of room names, not null"
	}
	switch {
	case ty == cty.DynamicPseudoType:
		return ""
	case ty.IsPrimitiveType():
		if v.IsKnown() {
			if s, err := convert.Convert(v, cty.String); err == nil && s.AsString() == "" {
				return "must not be an empty room name"
			}
		}
		return ""
	case ty.IsListType() || ty.IsSetType():
		if et := ty.ElementType(); et.IsPrimitiveType() || et == cty.DynamicPseudoType {
			return ""
		}
	case ty.IsTupleType():
		for _, et := range ty.TupleElementTypes() {
			if !et.IsPrimitiveType() && et != cty.DynamicPseudoType {
				return "must be a room name or a list of room names"
			}
		}
		return ""
	}
	return "must be a room name or a list of room names"
}

// checkValue accepts any value: an acknowledgement may be anything JSON
// can say, null included.
func checkValue(cty.Value) string { return "" }

func checkArgs(v cty.Value) string {
	ty := v.Type()
	if v.IsNull() {
		return "must be a list of arguments, not null"
	}
	if ty == cty.DynamicPseudoType || ty.IsTupleType() || ty.IsListType() || ty.IsSetType() {
		return ""
	}
	return "must be a list of arguments, e.g. [auth] or [{ok = true}]"
}

// runtime validates an expression that is evaluated per event: only the
// allowed variables and known functions, and a type check against a stand-in
// evaluation. Expressions without variables are evaluated now and returned as
// static expressions.
func (d *decoder) runtime(expr hcl.Expression, context hcl.Range, where string, allowed []string, check typeCheck) hcl.Expression {
	bad := false
	for _, tr := range expr.Variables() {
		if !contains(allowed, tr.RootName()) {
			d.errorf(tr.SourceRange().Ptr(), context.Ptr(), "Unknown variable",
				"There is no variable named %q in %s; available: %s.", tr.RootName(), where, strings.Join(allowed, ", "))
			bad = true
		}
	}
	if se, ok := expr.(hclsyntax.Expression); ok {
		diags := hclsyntax.VisitAll(se, func(n hclsyntax.Node) hcl.Diagnostics {
			if fc, ok := n.(*hclsyntax.FunctionCallExpr); ok {
				if _, known := functions[fc.Name]; !known {
					names := make([]string, 0, len(functions))
					for k := range functions {
						names = append(names, k)
					}
					sort.Strings(names)
					return hcl.Diagnostics{{
						Severity: hcl.DiagError,
						Summary:  "Call to unknown function",
						Detail:   fmt.Sprintf("There is no function named %q; available: %s.", fc.Name, strings.Join(names, ", ")),
						Subject:  fc.NameRange.Ptr(),
						Context:  context.Ptr(),
					}}
				}
			}
			return nil
		})
		d.diags = append(d.diags, diags...)
		bad = bad || diags.HasErrors()
	}
	if bad {
		return expr
	}
	constant := len(expr.Variables()) == 0
	v, diags := expr.Value(NewEvalContext(validationVariables(allowed)))
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return expr
	}
	if msg := check(v); msg != "" {
		d.errorf(expr.Range().Ptr(), context.Ptr(), "Invalid value", "This expression %s.", msg)
		return expr
	}
	if constant && v.IsWhollyKnown() {
		return hcl.StaticExpr(v, expr.Range())
	}
	return expr
}
