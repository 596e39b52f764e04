package config

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/socketfleet/socketfleet/core/pluginhost"
)

// DefaultLimits are the limits block's defaults.
var DefaultLimits = Limits{
	PacketRate:        100,
	PacketBurst:       200,
	MaxRooms:          1000,
	AttachmentTimeout: 10 * time.Second,
	BodyTimeout:       10 * time.Second,
	MaxHeadBytes:      16 << 10,
	MaxHandshakeBytes: 8 << 10,
	IdleTimeout:       60 * time.Second,

	MaxConnectionsPerIP: 256,
	HandshakeRatePerIP:  20,
	HandshakeBurstPerIP: 200,
	PerIPExempt:         []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	MaxTrackedIPs:       100000,
}

var limitsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "packet_rate"}, {Name: "packet_burst"}, {Name: "max_rooms"}, {Name: "attachment_timeout"},
		{Name: "body_timeout"}, {Name: "max_head_bytes"}, {Name: "max_handshake_bytes"}, {Name: "idle_timeout"},
		{Name: "max_connections_per_ip"}, {Name: "handshake_rate_per_ip"}, {Name: "handshake_burst_per_ip"},
		{Name: "per_ip_exempt"}, {Name: "max_tracked_ips"}, {Name: "trusted_proxy_header"}, {Name: "trusted_proxies"},
	},
}

func (d *decoder) limits(b *hcl.Block, l *Limits) {
	*l = DefaultLimits
	if b == nil {
		return
	}
	a := d.content(b.Body, limitsSchema).Attributes
	d.integer(a["packet_rate"], &l.PacketRate, 0)
	d.integer(a["packet_burst"], &l.PacketBurst, 1)
	d.integer(a["max_rooms"], &l.MaxRooms, 1)
	d.duration(a["attachment_timeout"], &l.AttachmentTimeout, true)
	d.duration(a["body_timeout"], &l.BodyTimeout, true)
	d.size(a["max_head_bytes"], &l.MaxHeadBytes)
	if attr := a["max_head_bytes"]; attr != nil && l.MaxHeadBytes < 4096 {
		d.attrError(attr, "Invalid size", "max_head_bytes must be at least 4KiB (browsers send a few hundred bytes to a few KiB of headers).")
	}
	d.size(a["max_handshake_bytes"], &l.MaxHandshakeBytes)
	d.duration(a["idle_timeout"], &l.IdleTimeout, true)

	d.integer(a["max_connections_per_ip"], &l.MaxConnectionsPerIP, 0)
	d.integer(a["handshake_rate_per_ip"], &l.HandshakeRatePerIP, 0)
	d.integer(a["handshake_burst_per_ip"], &l.HandshakeBurstPerIP, 1)
	l.PerIPExempt = d.prefixes(a["per_ip_exempt"], l.PerIPExempt)
	d.integer(a["max_tracked_ips"], &l.MaxTrackedIPs, 1)
	if attr := a["trusted_proxy_header"]; attr != nil && d.str(attr, &l.TrustedProxyHeader) {
		l.TrustedProxyHeader = strings.TrimSpace(l.TrustedProxyHeader)
		switch {
		case strings.EqualFold(l.TrustedProxyHeader, "Forwarded"):
			d.attrError(attr, "Unsupported header", `The RFC 7239 "Forwarded" header is not supported; use a header holding a comma-separated list of addresses, such as "X-Forwarded-For" or "X-Real-IP".`)
		case l.TrustedProxyHeader != "" && strings.ContainsAny(l.TrustedProxyHeader, " \t:()<>@,;\\\"/[]?={}"):
			d.attrError(attr, "Invalid header name", "%q is not an HTTP header name.", l.TrustedProxyHeader)
		}
	}
	l.TrustedProxies = d.prefixes(a["trusted_proxies"], nil)
	if attr := a["trusted_proxies"]; attr != nil && l.TrustedProxyHeader == "" {
		d.attrError(attr, "trusted_proxies without trusted_proxy_header",
			"trusted_proxies names the peers whose trusted_proxy_header is believed; without trusted_proxy_header no header is read. Set trusted_proxy_header (e.g. \"X-Forwarded-For\") or remove trusted_proxies.")
	}
}

// prefixes decodes a list of CIDRs ("10.0.0.0/8") or single addresses
// (a /32 or /128); def without the attribute.
func (d *decoder) prefixes(attr *hcl.Attribute, def []netip.Prefix) []netip.Prefix {
	var list []string
	if attr == nil || !d.strList(attr, &list) {
		return def
	}
	out := make([]netip.Prefix, 0, len(list))
	for i, e := range list {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			a, aerr := netip.ParseAddr(e)
			if aerr != nil {
				d.errorf(elemRange(attr, i).Ptr(), attr.Range.Ptr(), "Invalid CIDR", "%q is neither a CIDR (\"10.0.0.0/8\") nor an IP address.", e)
				continue
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	return out
}

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
		{Type: "drain"}, {Type: "load_shedding"}, {Type: "api"}, {Type: "limits"},
		{Type: "recovery"}, {Type: "tls"}, {Type: "reload"},
	},
}

var corsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "allowed_origins"}, {Name: "credentials"}},
}

var cookieSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "name"}, {Name: "path"}, {Name: "http_only"}, {Name: "secure"}, {Name: "same_site"}, {Name: "max_age"},
	},
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
		if attr := c.Attributes["credentials"]; attr != nil && s.CORS.Credentials && slices.Contains(s.CORS.AllowedOrigins, "*") {
			// Any site could then make a visitor's browser connect with
			// their cookies and read the answers.
			d.attrError(attr, "Credentials with any origin",
				`credentials = true cannot go with allowed_origins = ["*"]: every site could make a visitor's browser send its cookies here and read the answers. List the exact origins instead.`)
		}
	}
	s.TLS = d.tls(d.single(blocks, "tls", "the server block"))
	d.drain(d.single(blocks, "drain", "the server block"), &s.Drain)
	d.limits(d.single(blocks, "limits", "the server block"), &s.Limits)
	s.Recovery = d.recovery(d.single(blocks, "recovery", "the server block"))
	s.Reload = d.reloadBlock(d.single(blocks, "reload", "the server block"))
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
