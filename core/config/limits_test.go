package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestLimits: the limits block's defaults (config.hcl shows them), each
// attribute set, and the refusals.
func TestLimits(t *testing.T) {
	if got := mustLoad(t, "../../config.hcl").Server.Limits; !reflect.DeepEqual(got, DefaultLimits) {
		t.Errorf("config.hcl's limits %+v, want the defaults %+v", got, DefaultLimits)
	}
	if got := mustParse(t, `server {}`).Server.Limits; !reflect.DeepEqual(got, DefaultLimits) {
		t.Errorf("no limits block: %+v", got)
	}
	got := mustParse(t, `server {
  limits {
    packet_rate         = 0
    packet_burst        = 5
    max_rooms           = 3
    attachment_timeout  = "1s"
    body_timeout        = "2s"
    max_head_bytes      = "8KiB"
    max_handshake_bytes = 1024
    idle_timeout        = "5s"

    max_connections_per_ip = 0
    handshake_rate_per_ip  = 3
    handshake_burst_per_ip = 4
    per_ip_exempt          = []
    max_tracked_ips        = 10
    trusted_proxy_header   = "x-forwarded-for"
    trusted_proxies        = ["10.0.0.0/8", "192.168.1.7", "::ffff:172.16.0.0/108", "2001:db8::1/48"]
  }
}`).Server.Limits
	want := Limits{PacketRate: 0, PacketBurst: 5, MaxRooms: 3, AttachmentTimeout: time.Second, BodyTimeout: 2 * time.Second,
		MaxHeadBytes: 8192, MaxHandshakeBytes: 1024, IdleTimeout: 5 * time.Second,
		MaxConnectionsPerIP: 0, HandshakeRatePerIP: 3, HandshakeBurstPerIP: 4, PerIPExempt: []netip.Prefix{}, MaxTrackedIPs: 10,
		TrustedProxyHeader: "x-forwarded-for", TrustedProxies: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
			netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("2001:db8::/48")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("limits %+v, want %+v", got, want)
	}
	for src, msg := range map[string]string{
		"server {\n limits { max_rooms = 0 }\n}":                      `"max_rooms" must be at least 1`,
		"server {\n limits { max_head_bytes = 1000 }\n}":              `max_head_bytes must be at least 4KiB`,
		"server {\n limits { idle_timeout = \"0s\" }\n}":              `"idle_timeout" must be greater than zero`,
		"server {\n limits { packet_rate = -1 }\n}":                   `"packet_rate" must be at least 0`,
		"server {\n limits { packets = 1 }\n}":                        `Unsupported argument`,
		"server {\n limits {}\n limits {}\n}":                         `limits`,
		"server {\n limits { trusted_proxies = [\"10.0.0.0/8\"] }\n}": `without trusted_proxy_header`,
		"server {\n limits {\n trusted_proxy_header = \"X-Forwarded-For\"\n trusted_proxies = [\"10.0.0.300/8\"]\n }\n}": `Invalid CIDR`,
		"server {\n limits { trusted_proxy_header = \"Forwarded\" }\n}":                                                  `not supported`,
		"server {\n limits { trusted_proxy_header = \"X Forwarded\" }\n}":                                                `not an HTTP header name`,
		"server {\n limits { per_ip_exempt = [\"localhost\"] }\n}":                                                       `Invalid CIDR`,
		"server {\n limits { max_connections_per_ip = -1 }\n}":                                                           `"max_connections_per_ip" must be at least 0`,
	} {
		_, diags := Parse([]byte(src), "test.hcl")
		if !diags.HasErrors() || !strings.Contains(diags.Error(), msg) {
			t.Errorf("%s: %v, want an error saying %s", src, diags, msg)
		}
	}
}
