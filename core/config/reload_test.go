package config

import (
	"strings"
	"testing"
)

func loaded(t *testing.T, src string) *Loaded {
	t.Helper()
	cfg, diags := Parse([]byte(src), "r.hcl")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return &Loaded{Config: cfg, Source: []byte(src), Hash: Hash([]byte(src))}
}

const reloadBase = `server {
  listen = "127.0.0.1:8081"
  ping_interval = "25s"
}
auth "jwt" {
  secret = "x"
}
namespace "/" {
  event "a" {
    rate_limit = "5/s"
  }
  event "b" {
    rate_limit = "5/s"
  }
}
`

func TestRefusalsNameTheAttribute(t *testing.T) {
	prev := loaded(t, reloadBase)
	for _, c := range []struct{ from, to, want string }{
		{`listen = "127.0.0.1:8081"`, `listen = "127.0.0.1:8082"`, "r.hcl:2:3: Cannot change server.listen at run time"},
		{`ping_interval = "25s"`, `max_payload = 5`, "r.hcl:3:3: Cannot change server.max_payload at run time"},
		{`server {`, "server {\n  path = \"/io/\"", "r.hcl:2:3: Cannot change server.path at run time"},
		{`server {`, "server {\n  recovery {}", "r.hcl:2:3: Cannot change server.recovery at run time"},
	} {
		next := loaded(t, strings.Replace(reloadBase, c.from, c.to, 1))
		Inherit(prev, next)
		d := Refusals(prev, next)
		if len(d) != 1 || !strings.HasPrefix(d[0].Subject.String(), "r.hcl") ||
			!strings.Contains(rangeStart(*d[0].Subject)+": "+d[0].Summary, c.want) {
			t.Errorf("%s: %v", c.to, d)
		}
	}
	// What may change: rules, plugin blocks other than the adapter, ping values.
	next := loaded(t, strings.Replace(strings.Replace(strings.Replace(reloadBase, `"5/s"`, `"1/s"`, 1), `secret = "x"`, `secret = "y"`, 1),
		`ping_interval = "25s"`, `ping_interval = "5s"`, 1))
	Inherit(prev, next)
	if d := Refusals(prev, next); len(d) != 0 {
		t.Errorf("refused: %v", d)
	}
	// The adapter block: refused when added (or removed), or changed under recovery.
	withAdapter := loaded(t, reloadBase+"adapter \"redis\" {\n  url = \"redis://a\"\n}\n")
	Inherit(prev, withAdapter)
	if d := Refusals(prev, withAdapter); len(d) != 1 || !strings.Contains(d[0].Summary, "adapter") {
		t.Errorf("adapter added: %v", d)
	}
	// The admin block is set up at start.
	withAdmin := loaded(t, reloadBase+"admin {\n  auth = false\n}\n")
	Inherit(prev, withAdmin)
	if d := Refusals(prev, withAdmin); len(d) != 1 || !strings.Contains(d[0].Summary, "admin block") ||
		d[0].Subject == nil || d[0].Subject.Start.Line != 16 {
		t.Errorf("admin added: %v", d)
	}
}

func TestInheritKeepsTheGeneratedInstanceIDAndRuleIndexes(t *testing.T) {
	t.Setenv("INSTANCE_ID", "")
	prev := loaded(t, reloadBase)
	// A rule inserted before the others, and one removed: the kept rule
	// keeps its index (its rate-limit buckets), the new one gets a fresh one.
	src := strings.Replace(reloadBase, `  event "a" {`, "  event \"new\" {\n    rate_limit = \"1/s\"\n  }\n  event \"a\" {", 1)
	src = strings.Replace(src, "  event \"b\" {\n    rate_limit = \"5/s\"\n  }\n", "", 1)
	next := loaded(t, src)
	if next.Server.InstanceID == prev.Server.InstanceID {
		t.Fatal("two generated ids are equal")
	}
	Inherit(prev, next)
	if next.Server.InstanceID != prev.Server.InstanceID {
		t.Errorf("generated instance id not kept")
	}
	ns, old := next.Namespace("/"), prev.Namespace("/")
	if ns.Events["a"].Index != old.Events["a"].Index {
		t.Errorf("rule a moved from %d to %d", old.Events["a"].Index, ns.Events["a"].Index)
	}
	if i := ns.Events["new"].Index; i == old.Events["a"].Index || i == old.Events["b"].Index {
		t.Errorf("the new rule shares index %d with an old one", i)
	}
}

func TestPluginSourceIsTheWholeBlock(t *testing.T) {
	l := loaded(t, reloadBase)
	if got := PluginSource(l.Plugins[0], l.Source); got != "auth \"jwt\" {\n  secret = \"x\"\n}" {
		t.Errorf("%q", got)
	}
}

// TestLimitsReload: of the limits block, only the settings net/http's
// server is built with are refused, each named and pointed at; the others
// (packet rate, rooms, per-IP bounds, proxies) are accepted.
func TestLimitsReload(t *testing.T) {
	base := strings.Replace(reloadBase, `  ping_interval = "25s"`, `  ping_interval = "25s"
  limits {
    packet_rate = 100
    max_head_bytes = "16KiB"
  }`, 1)
	prev := loaded(t, base)
	for _, c := range []struct{ from, to, want string }{
		{`max_head_bytes = "16KiB"`, `max_head_bytes = "32KiB"`, "r.hcl:6:5: Cannot change server.limits.max_head_bytes at run time"},
		{`packet_rate = 100`, "packet_rate = 100\n    idle_timeout = \"5s\"", "r.hcl:6:5: Cannot change server.limits.idle_timeout at run time"},
	} {
		next := loaded(t, strings.Replace(base, c.from, c.to, 1))
		Inherit(prev, next)
		d := Refusals(prev, next)
		if len(d) != 1 || d[0].Subject == nil || rangeStart(*d[0].Subject)+": "+d[0].Summary != c.want ||
			!strings.Contains(d[0].Detail, "server.limits.") {
			t.Errorf("%s: %v", c.to, d)
		}
	}
	next := loaded(t, strings.Replace(base, `packet_rate = 100`, `packet_rate = 5
    packet_burst = 3
    max_rooms = 2
    attachment_timeout = "1s"
    body_timeout = "2s"
    max_handshake_bytes = "4KiB"
    max_connections_per_ip = 1
    handshake_rate_per_ip = 1
    handshake_burst_per_ip = 1
    per_ip_exempt = []
    max_tracked_ips = 10
    trusted_proxy_header = "X-Forwarded-For"
    trusted_proxies = ["10.0.0.0/8"]`, 1))
	Inherit(prev, next)
	if next.Server.Limits.PacketRate != 5 || next.Server.Limits.MaxRooms != 2 {
		t.Fatalf("not parsed: %+v", next.Server.Limits)
	}
	if d := Refusals(prev, next); len(d) != 0 {
		t.Errorf("refused: %v", d)
	}
}
