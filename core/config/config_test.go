package config

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	cfg, diags := Load(path)
	if diags.HasErrors() {
		var buf bytes.Buffer
		_ = WriteDiagnostics(&buf, nil, diags)
		t.Fatalf("Load(%s):\n%s", path, buf.String())
	}
	return cfg
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, diags := Parse([]byte(src), "test.hcl")
	if diags.HasErrors() {
		var buf bytes.Buffer
		_ = WriteDiagnostics(&buf, SourceFile("test.hcl", []byte(src)), diags)
		t.Fatalf("Parse:\n%s", buf.String())
	}
	return cfg
}

func eventScope(args ...cty.Value) *hcl.EvalContext {
	s := &Scope{
		Auth:      cty.ObjectVal(map[string]cty.Value{"user": cty.StringVal("ann")}),
		Query:     map[string]string{"EIO": "4"},
		Headers:   map[string]string{"user-agent": "test"},
		SocketID:  "sid1",
		Namespace: "/",
		Args:      cty.TupleVal(args),
	}
	if len(args) == 0 {
		s.Args = cty.EmptyTupleVal
	}
	return s.EvalContext()
}

func TestRootConfig(t *testing.T) {
	t.Setenv("LISTEN_ADDR", "")
	t.Setenv("INSTANCE_ID", "")
	t.Setenv("LOG_LEVEL", "")
	cfg := mustLoad(t, "../../config.hcl")
	s := cfg.Server
	if s.Listen != ":8081" || s.Path != "/socket.io/" || s.EngineIOEcho != "" {
		t.Errorf("listen/path/echo = %q %q %q", s.Listen, s.Path, s.EngineIOEcho)
	}
	if strings.Join(s.Transports, ",") != "polling,websocket" {
		t.Errorf("transports = %v", s.Transports)
	}
	if s.PingInterval != 25*time.Second || s.PingTimeout != 20*time.Second || s.UpgradeTimeout != 10*time.Second ||
		s.ConnectTimeout != 45*time.Second || s.AckTimeout != 10*time.Second {
		t.Errorf("durations = %v %v %v %v %v", s.PingInterval, s.PingTimeout, s.UpgradeTimeout, s.ConnectTimeout, s.AckTimeout)
	}
	if s.MaxPayload != 1000000 || s.MaxAttachments != 10 || s.SendQueue != 1024 {
		t.Errorf("limits = %d %d %d", s.MaxPayload, s.MaxAttachments, s.SendQueue)
	}
	if !regexp.MustCompile(`^instance-[0-9a-f]{8}$`).MatchString(s.InstanceID) {
		t.Errorf("instance id = %q", s.InstanceID)
	}
	if s.LogLevel != "info" || s.LogFormat != "json" {
		t.Errorf("log = %q %q", s.LogLevel, s.LogFormat)
	}
	if len(s.CORS.AllowedOrigins) != 1 || s.CORS.AllowedOrigins[0] != "*" || s.CORS.Credentials {
		t.Errorf("cors = %+v", s.CORS)
	}
	if s.SessionCookie != nil || s.InstanceCookie != nil {
		t.Errorf("cookies should be off")
	}
	if len(cfg.Namespaces) != 1 {
		t.Fatalf("namespaces = %d", len(cfg.Namespaces))
	}
	ns := cfg.Namespace("/")
	if ns == nil || ns.UnknownEvents != "drop" || len(ns.OnConnect) != 0 {
		t.Fatalf("namespace / = %+v", ns)
	}

	join := ns.Events["join"]
	if join == nil || roomOf(join, true) == nil || roomOf(join, false) != nil || ackOf(join) != nil {
		t.Fatalf("join rule = %+v", join)
	}
	for _, arg := range []cty.Value{
		cty.StringVal("room1"),
		cty.ObjectVal(map[string]cty.Value{"room": cty.StringVal("room1")}),
	} {
		ctx := eventScope(arg)
		rooms, diags := EvalStrings(roomOf(join, true).room, ctx)
		if diags.HasErrors() || len(rooms) != 1 || rooms[0] != "room1" {
			t.Errorf("join room of %#v = %v %v", arg, rooms, diags)
		}
		if ok, diags := roomOf(join, true).allowed(ctx, "room1"); !ok || diags.HasErrors() {
			t.Errorf("room1 not allowed: %v", diags)
		}
	}

	leave := ns.Events["leave"]
	if leave == nil || roomOf(leave, false) == nil || roomOf(leave, true) != nil {
		t.Fatalf("leave rule = %+v", leave)
	}

	chat := ns.Events["chat:message"]
	if chat == nil || len(stepsOf[*broadcastStep](chat)) != 1 {
		t.Fatalf("chat rule = %+v", chat)
	}
	if rate, burst := rateOf(chat); maxSizeOf(chat) != 16000 || rate != 20 || burst != 20 {
		t.Errorf("chat limits = %d %v %d", maxSizeOf(chat), rate, burst)
	}
	b := stepsOf[*broadcastStep](chat)[0]
	if b.event != "chat:message" || !b.args.Passthrough || b.args.Expr != nil || b.exceptSender || !b.requireMember || b.to == nil {
		t.Errorf("broadcast = %+v", b)
	}
	to, diags := EvalStrings(b.to, eventScope(cty.ObjectVal(map[string]cty.Value{
		"room": cty.StringVal("lobby"), "text": cty.StringVal("hi"),
	})))
	if diags.HasErrors() || len(to) != 1 || to[0] != "lobby" {
		t.Errorf("broadcast to = %v %v", to, diags)
	}
}

func TestRootConfigEnv(t *testing.T) {
	t.Setenv("LISTEN_ADDR", "127.0.0.1:9999")
	t.Setenv("INSTANCE_ID", "node-7")
	t.Setenv("LOG_LEVEL", "DEBUG")
	cfg := mustLoad(t, "../../config.hcl")
	if cfg.Server.Listen != "127.0.0.1:9999" || cfg.Server.InstanceID != "node-7" || cfg.Server.LogLevel != "debug" {
		t.Errorf("got %q %q %q", cfg.Server.Listen, cfg.Server.InstanceID, cfg.Server.LogLevel)
	}
}

func TestConformanceConfig(t *testing.T) {
	t.Setenv("LISTEN_ADDR", "")
	cfg := mustLoad(t, "../../examples/conformance/config.hcl")
	s := cfg.Server
	if s.Listen != ":3000" || s.Path != "/socket.io/" || s.EngineIOEcho != "/engine.io/" {
		t.Errorf("listen/path/echo = %q %q %q", s.Listen, s.Path, s.EngineIOEcho)
	}
	if s.PingInterval != 300*time.Millisecond || s.PingTimeout != 200*time.Millisecond || s.ConnectTimeout != time.Second || s.MaxPayload != 1000000 {
		t.Errorf("server = %+v", s)
	}
	if len(cfg.Namespaces) != 2 || cfg.Namespaces[0].Name != "/" || cfg.Namespaces[1].Name != "/custom" {
		t.Fatalf("namespaces = %v", cfg.Namespaces)
	}
	for _, ns := range cfg.Namespaces {
		if len(ns.OnConnect) != 1 || ns.OnConnect[0].Event != "auth" || ns.OnConnect[0].Args.Passthrough {
			t.Fatalf("%s on_connect = %+v", ns.Name, ns.OnConnect)
		}
		auth := cty.ObjectVal(map[string]cty.Value{"token": cty.StringVal("abc")})
		ctx := (&Scope{Auth: auth, SocketID: "x", Namespace: ns.Name}).EvalContext()
		vals, diags := ns.OnConnect[0].Args.Eval(ctx)
		if diags.HasErrors() || len(vals) != 1 || !vals[0].RawEquals(auth) {
			t.Errorf("%s auth args = %#v %v", ns.Name, vals, diags)
		}
		// No CONNECT payload: auth is {}.
		vals, diags = ns.OnConnect[0].Args.Eval((&Scope{}).EvalContext())
		if diags.HasErrors() || len(vals) != 1 || !vals[0].RawEquals(cty.EmptyObjectVal) {
			t.Errorf("%s empty auth args = %#v %v", ns.Name, vals, diags)
		}
	}
	root := cfg.Namespace("/")
	msg := root.Events["message"]
	if msg == nil || firstOf[*replyStep](msg) == nil || firstOf[*replyStep](msg).event != "message-back" || !firstOf[*replyStep](msg).args.Passthrough || ackOf(msg) != nil {
		t.Errorf("message = %+v", msg)
	}
	ack := root.Events["message-with-ack"]
	if ack == nil || ackOf(ack) == nil || !ackOf(ack).Passthrough || firstOf[*replyStep](ack) != nil {
		t.Errorf("message-with-ack = %+v", ack)
	}
	if len(cfg.Namespace("/custom").Events) != 0 {
		t.Errorf("/custom has events")
	}
}

func TestDefaults(t *testing.T) {
	t.Setenv("INSTANCE_ID", "from-env")
	t.Setenv("LOG_LEVEL", "")
	cfg := mustParse(t, "")
	s := cfg.Server
	if s.Listen != ":8081" || s.Path != "/socket.io/" || len(s.Transports) != 2 || s.PingInterval != 25*time.Second ||
		s.MaxPayload != 1000000 || s.InstanceID != "from-env" || s.LogLevel != "info" || s.LogFormat != "json" {
		t.Errorf("defaults = %+v", s)
	}
	if len(cfg.Namespaces) != 1 || cfg.Namespaces[0].Name != "/" || cfg.Namespaces[0].UnknownEvents != "drop" || cfg.Namespaces[0].Events == nil {
		t.Errorf("default namespace = %+v", cfg.Namespaces)
	}

	cfg = mustParse(t, `
server {
  path = "/io"
  instance_id = "cfg-id"
  max_payload = "1MiB"
  session_cookie {}
  instance_cookie {
    name = "lb"
    same_site = "Strict"
    max_age = "1h"
  }
}
namespace "/chat" {
  event "x" {
    rate_limit = "30/m"
    broadcast {}
    broadcast {
      to = ["a", "b"]
      event = "y"
      except_sender = true
      require_member = false
    }
    reply { event = "pong" }
  }
}`)
	s = cfg.Server
	if s.Path != "/io/" || s.InstanceID != "cfg-id" || s.MaxPayload != 1048576 {
		t.Errorf("server = %+v", s)
	}
	if c := s.SessionCookie; c == nil || *c != (Cookie{Name: "io", Path: "/", HTTPOnly: true, SameSite: "lax"}) {
		t.Errorf("session cookie = %+v", c)
	}
	if c := s.InstanceCookie; c == nil || *c != (Cookie{Name: "lb", Path: "/", HTTPOnly: true, SameSite: "strict", MaxAge: time.Hour}) {
		t.Errorf("instance cookie = %+v", c)
	}
	if len(cfg.Namespaces) != 2 || cfg.Namespaces[0].Name != "/chat" || cfg.Namespaces[1].Name != "/" {
		t.Fatalf("namespaces = %+v", cfg.Namespaces)
	}
	r := cfg.Namespaces[0].Events["x"]
	if rate, burst := rateOf(r); rate != 0.5 || burst != 1 {
		t.Errorf("rate = %v %d", rate, burst)
	}
	b0, b1 := stepsOf[*broadcastStep](r)[0], stepsOf[*broadcastStep](r)[1]
	if b0.to != nil || b0.event != "x" || !b0.args.Passthrough || !b0.requireMember || b0.exceptSender {
		t.Errorf("broadcast 0 = %+v", b0)
	}
	if b1.event != "y" || !b1.exceptSender || b1.requireMember {
		t.Errorf("broadcast 1 = %+v", b1)
	}
	// Constant expressions are folded at load time.
	if _, ok := b1.to.(*hclsyntax.TupleConsExpr); ok {
		t.Errorf("constant `to` not folded")
	}
	if to, diags := EvalStrings(b1.to, eventScope()); diags.HasErrors() || strings.Join(to, ",") != "a,b" {
		t.Errorf("to = %v %v", to, diags)
	}
	if rp := firstOf[*replyStep](r); rp.event != "pong" || !rp.args.Passthrough {
		t.Errorf("reply = %+v", rp)
	}
}

func TestPassthrough(t *testing.T) {
	cfg := mustParse(t, `
namespace "/" {
  on_connect {
    emit "hello" {}
    emit "hi" { args = ["x", socket.id] }
  }
  event "a" {
    ack = args
    reply {
      event = "b"
      args  = args
    }
    broadcast { args = args }
  }
  event "c" {
    ack = [args]
    reply {
      event = "d"
      args  = [args[0]]
    }
    broadcast { args = (args) }
  }
}`)
	ns := cfg.Namespace("/")
	if e := ns.OnConnect[0]; e.Args.Passthrough || e.Args.Expr == nil {
		t.Errorf("emit without args = %+v", e.Args)
	} else if vals, diags := e.Args.Eval(eventScope()); diags.HasErrors() || len(vals) != 0 {
		t.Errorf("emit without args evaluates to %v %v", vals, diags)
	}
	vals, diags := ns.OnConnect[1].Args.Eval((&Scope{SocketID: "s1"}).EvalContext())
	if diags.HasErrors() || len(vals) != 2 || vals[1].AsString() != "s1" {
		t.Errorf("hi args = %v %v", vals, diags)
	}
	a := ns.Events["a"]
	aAck, aReply, aBroadcast := ackOf(a), firstOf[*replyStep](a), stepsOf[*broadcastStep](a)[0]
	if !aAck.Passthrough || aAck.Expr != nil || !aReply.args.Passthrough || !aBroadcast.args.Passthrough {
		t.Errorf("a: passthrough expected: %+v %+v %+v", aAck, aReply.args, aBroadcast.args)
	}
	c := ns.Events["c"]
	cAck, cReply := ackOf(c), firstOf[*replyStep](c)
	if cAck.Passthrough || cReply.args.Passthrough || stepsOf[*broadcastStep](c)[0].args.Passthrough {
		t.Errorf("c: no passthrough expected")
	}
	vals, diags = cReply.args.Eval(eventScope(cty.StringVal("p"), cty.NumberIntVal(2)))
	if diags.HasErrors() || len(vals) != 1 || vals[0].AsString() != "p" {
		t.Errorf("reply args = %v %v", vals, diags)
	}
	vals, diags = cAck.Eval(eventScope(cty.StringVal("p")))
	if diags.HasErrors() || len(vals) != 1 || !vals[0].Type().IsTupleType() {
		t.Errorf("ack args = %v %v", vals, diags)
	}
}

func TestEnv(t *testing.T) {
	t.Setenv("SF_TEST_ADDR", ":7000")
	t.Setenv("SF_TEST_EMPTY", "")
	cfg := mustParse(t, `
server {
  listen = env("SF_TEST_ADDR")
  path   = env("SF_TEST_UNSET", "/rt/")
  log_format = lower(env("SF_TEST_EMPTY", "TEXT"))
}
namespace "/" {
  event "e" {
    reply {
      event = format("%s-back", "e")
      args  = [env("SF_TEST_ADDR"), args[0]]
    }
  }
}`)
	if cfg.Server.Listen != ":7000" || cfg.Server.Path != "/rt/" || cfg.Server.LogFormat != "text" {
		t.Errorf("server = %+v", cfg.Server)
	}
	r := firstOf[*replyStep](cfg.Namespace("/").Events["e"])
	vals, diags := r.args.Eval(eventScope(cty.True))
	if r.event != "e-back" || diags.HasErrors() || vals[0].AsString() != ":7000" || vals[1] != cty.True {
		t.Errorf("reply = %+v %v %v", r, vals, diags)
	}

	// Missing without default: error at the argument, also in runtime expressions.
	for _, src := range []string{
		"server {\n  listen = env(\"SF_TEST_UNSET\")\n}\n",
		"namespace \"/\" {\n  event \"e\" {\n    ack = [env(\"SF_TEST_UNSET\"), args]\n  }\n}\n",
	} {
		_, diags := Parse([]byte(src), "test.hcl")
		d := firstError(diags)
		if d == nil || !strings.Contains(d.Detail, `"SF_TEST_UNSET" is not set`) {
			t.Fatalf("diags = %v", diags)
		}
		wantLine, wantCol := 2, 17
		if strings.HasPrefix(src, "namespace") {
			wantLine, wantCol = 3, 17
		}
		if d.Subject.Start.Line != wantLine || d.Subject.Start.Column != wantCol {
			t.Errorf("position = %d:%d, want %d:%d", d.Subject.Start.Line, d.Subject.Start.Column, wantLine, wantCol)
		}
	}
}

func firstError(diags hcl.Diagnostics) *hcl.Diagnostic {
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			return d
		}
	}
	return nil
}

func TestErrors(t *testing.T) {
	t.Setenv("LOG_LEVEL", "")
	cases := []struct {
		name, src, summary string
		line, col          int
	}{
		{"unknown attribute", "server {\n  listn = \":1\"\n}", "Unsupported argument", 2, 3},
		{"unknown block", "servr {\n}", "Unsupported block type", 1, 1},
		{"unknown nested block", "namespace \"/\" {\n  event \"a\" {\n    kick {}\n  }\n}", "Unsupported block type", 3, 5},
		{"wrong type", "server {\n  send_queue = \"many\"\n}", "Incorrect attribute value type", 2, 16},
		{"wrong bool", "server {\n  cors {\n    credentials = [1]\n  }\n}", "Incorrect attribute value type", 3, 19},
		{"bad duration", "server {\n  ping_interval = \"25x\"\n}", "Invalid duration", 2, 19},
		{"duration without unit", "server {\n  ping_timeout = 5\n}", "Invalid duration", 2, 18},
		{"zero duration", "server {\n  ack_timeout = \"0s\"\n}", "Invalid duration", 2, 17},
		{"negative max_age", "server {\n  session_cookie {\n    max_age = \"-1s\"\n  }\n}", "Invalid duration", 3, 15},
		{"bad size", "server {\n  max_payload = \"1QB\"\n}", "Invalid size", 2, 17},
		{"zero size", "server {\n  max_payload = 0\n}", "Invalid size", 2, 17},
		{"fractional size", "server {\n  max_payload = \"1.5B\"\n}", "Invalid size", 2, 17},
		{"bad event size", "namespace \"/\" {\n  event \"a\" {\n    max_size = \"big\"\n  }\n}", "Invalid size", 3, 16},
		{"bad transport", "server {\n  transports = [\"polling\", \"carrier\"]\n}", "Invalid attribute value", 2, 28},
		{"no transports", "server {\n  transports = []\n}", "Invalid attribute value", 2, 16},
		{"bad unknown_events", "namespace \"/\" {\n  unknown_events = \"explode\"\n}", "Invalid attribute value", 2, 20},
		{"bad namespace", "namespace \"chat\" {\n}", "Invalid namespace name", 1, 11},
		{"duplicate namespace", "namespace \"/a\" {\n}\nnamespace \"/a\" {\n}", "Duplicate namespace", 3, 11},
		{"duplicate event", "namespace \"/\" {\n  event \"a\" {}\n  event \"a\" {}\n}", "Duplicate event rule", 3, 9},
		{"duplicate join", "namespace \"/\" {\n  event \"a\" {\n    join { room = \"x\" }\n    join { room = \"y\" }\n  }\n}", "Duplicate join block", 4, 5},
		{"duplicate reply", "namespace \"/\" {\n  event \"a\" {\n    reply { event = \"x\" }\n    reply { event = \"y\" }\n  }\n}", "Duplicate reply block", 4, 5},
		{"duplicate on_connect", "namespace \"/\" {\n  on_connect {}\n  on_connect {}\n}", "Duplicate on_connect block", 3, 3},
		{"duplicate server", "server {}\nserver {}", "Duplicate server block", 2, 1},
		{"missing room", "namespace \"/\" {\n  event \"a\" {\n    join {}\n  }\n}", "Missing required argument", 3, 10},
		{"missing reply event", "namespace \"/\" {\n  event \"a\" {\n    reply {}\n  }\n}", "Missing required argument", 3, 11},
		{"reserved event", "namespace \"/\" {\n  event \"disconnect\" {}\n}", "Reserved event name", 2, 9},
		{"bad rate", "namespace \"/\" {\n  event \"a\" {\n    rate_limit = \"10/h\"\n  }\n}", "Invalid rate limit", 3, 18},
		{"burst without rate", "namespace \"/\" {\n  event \"a\" {\n    rate_burst = 3\n  }\n}", "Invalid attribute", 3, 18},
		{"bad listen", "server {\n  listen = \"8081\"\n}", "Invalid listen address", 2, 12},
		{"bad path", "server {\n  path = \"socket.io\"\n}", "Invalid path", 2, 10},
		{"bad origin", "server {\n  cors {\n    allowed_origins = [\"*\", \"https://x.com/\"]\n  }\n}", "Invalid origin", 3, 29},
		{"credentials with any origin", "server {\n  cors {\n    allowed_origins = [\"*\"]\n    credentials     = true\n  }\n}", "Credentials with any origin", 4, 23},
		{"bad log level", "server {\n  log_level = \"loud\"\n}", "Invalid attribute value", 2, 15},
		{"variable in static", "server {\n  listen = args[0]\n}", "Variables not allowed", 2, 12},
		{"unknown variable in rule", "namespace \"/\" {\n  event \"a\" {\n    join { room = usr.room }\n  }\n}", "Unknown variable", 3, 19},
		{"args in on_connect", "namespace \"/\" {\n  on_connect {\n    emit \"x\" { args = [args] }\n  }\n}", "Unknown variable", 3, 24},
		{"unknown function", "namespace \"/\" {\n  event \"a\" {\n    ack = [shout(args)]\n  }\n}", "Call to unknown function", 3, 12},
		{"unknown socket attr", "namespace \"/\" {\n  event \"a\" {\n    ack = [socket.ip]\n  }\n}", "Unsupported attribute", 3, 18},
		{"constant allow not string", "namespace \"/\" {\n  event \"a\" {\n    join {\n      room = args[0]\n      allow = [\"a\", {x = 1}]\n    }\n  }\n}", "Invalid value", 5, 21},
		{"allow not a list", "namespace \"/\" {\n  event \"a\" {\n    join {\n      room = args[0]\n      allow = \"a\"\n    }\n  }\n}", "Invalid allow list", 5, 15},
		{"room object", "namespace \"/\" {\n  event \"a\" {\n    leave { room = {r = args} }\n  }\n}", "Invalid value", 3, 20},
		{"empty room", "namespace \"/\" {\n  event \"a\" {\n    leave { room = \"\" }\n  }\n}", "Invalid value", 3, 20},
		{"args not list", "namespace \"/\" {\n  event \"a\" {\n    ack = \"ok\"\n  }\n}", "Invalid value", 3, 11},
		{"args object with vars", "namespace \"/\" {\n  event \"a\" {\n    ack = {n = args}\n  }\n}", "Invalid value", 3, 11},
		{"short api token", "server {\n  api {\n    token = \"short\"\n  }\n}", "Invalid API token", 3, 13},
		{"api without token", "server {\n  api {}\n}", "Missing required argument", 2, 7},
		{"empty redact_auth field", "server {\n  api {\n    token = \"0123456789abcdef\"\n    redact_auth = [\"\"]\n  }\n}", "Invalid redact_auth", 4, 19},
		{"duplicate api", "server {\n  api { token = \"0123456789abcdef\" }\n  api { token = \"0123456789abcdef\" }\n}", "Duplicate api block", 3, 3},
		{"server_emit reserved", "namespace \"/\" {\n  event \"a\" {\n    server_emit { event = \"connect\" }\n  }\n}", "Reserved event name", 3, 27},
		{"server_emit unknown attr", "namespace \"/\" {\n  event \"a\" {\n    server_emit { to = \"x\" }\n  }\n}", "Unsupported argument", 3, 19},
		{"server_emit args not list", "namespace \"/\" {\n  event \"a\" {\n    server_emit { args = \"x\" }\n  }\n}", "Invalid value", 3, 26},
		{"server_event socket var", "namespace \"/\" {\n  server_event \"s\" {\n    broadcast { to = socket.id }\n  }\n}", "Unknown variable", 3, 22},
		{"server_event auth in ack", "namespace \"/\" {\n  server_event \"s\" {\n    ack = auth.user\n  }\n}", "Unknown variable", 3, 11},
		{"server_event except_sender", "namespace \"/\" {\n  server_event \"s\" {\n    broadcast { except_sender = true }\n  }\n}", "Unsupported argument", 3, 17},
		{"server_event reserved", "namespace \"/\" {\n  server_event \"disconnect\" {}\n}", "Reserved event name", 2, 16},
		{"duplicate server_event", "namespace \"/\" {\n  server_event \"s\" {}\n  server_event \"s\" {}\n}", "Duplicate server_event block", 3, 16},
		{"server_event unknown function", "namespace \"/\" {\n  server_event \"s\" {\n    ack = shout(args)\n  }\n}", "Call to unknown function", 3, 11},
		{"same cookie names", "server {\n  session_cookie { name = \"x\" }\n  instance_cookie { name = \"x\" }\n}", "Duplicate cookie name", 3, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := Parse([]byte(tc.src), "test.hcl")
			if cfg != nil || !diags.HasErrors() {
				t.Fatalf("expected an error, got %v", diags)
			}
			d := firstError(diags)
			if d.Summary != tc.summary {
				t.Fatalf("summary = %q (%s), want %q; all: %v", d.Summary, d.Detail, tc.summary, diags)
			}
			if d.Subject == nil {
				t.Fatalf("no subject: %v", d)
			}
			if d.Subject.Filename != "test.hcl" || d.Subject.Start.Line != tc.line || d.Subject.Start.Column != tc.col {
				t.Errorf("at %d:%d, want %d:%d (%s)", d.Subject.Start.Line, d.Subject.Start.Column, tc.line, tc.col, d.Detail)
			}
		})
	}
}

func TestDuplicateShowsBothPositions(t *testing.T) {
	_, diags := Parse([]byte("namespace \"/a\" {\n}\n\nnamespace \"/a\" {\n}\n"), "test.hcl")
	d := firstError(diags)
	if d == nil || d.Subject.Start.Line != 4 || !strings.Contains(d.Detail, "test.hcl:1:1") {
		t.Fatalf("diags = %v", diags)
	}
}

func TestLogLevelEnv(t *testing.T) {
	t.Setenv("LOG_LEVEL", "noisy")
	_, diags := Parse([]byte(""), "test.hcl")
	if d := firstError(diags); d == nil || !strings.Contains(d.Summary, "LOG_LEVEL") {
		t.Fatalf("diags = %v", diags)
	}
}

func TestRuntimeValidationVariables(t *testing.T) {
	cfg := mustParse(t, `
namespace "/" {
  on_connect {
    emit "who" { args = [auth, query.x, headers["user-agent"], socket.id, socket.namespace] }
  }
  event "e" {
    join {
      room  = "u:${try(auth.user, args[0])}"
      allow = ["u:${auth.user}", "lobby"]
    }
    broadcast { to = [for r in args : tostring(r)] }
  }
}`)
	ns := cfg.Namespace("/")
	j := roomOf(ns.Events["e"], true)
	ctx := eventScope(cty.StringVal("z"))
	if rooms, d := EvalStrings(j.room, ctx); d.HasErrors() || rooms[0] != "u:ann" {
		t.Errorf("room = %v %v", rooms, d)
	}
	if ok, _ := j.allowed(ctx, "u:ann"); !ok {
		t.Errorf("u:ann not allowed")
	}
	if ok, _ := j.allowed(ctx, "u:bob"); ok {
		t.Errorf("u:bob allowed")
	}
	// A socket without auth.user: that pattern fails and does not match; "lobby" still does.
	noAuth := (&Scope{Args: cty.TupleVal([]cty.Value{cty.StringVal("z")})}).EvalContext()
	if ok, d := j.allowed(noAuth, "u:ann"); ok || !d.HasErrors() {
		t.Errorf("no-auth u:ann = %v %v", ok, d)
	}
	if ok, _ := j.allowed(noAuth, "lobby"); !ok {
		t.Errorf("lobby not allowed")
	}
	to, d := EvalStrings(stepsOf[*broadcastStep](ns.Events["e"])[0].to, eventScope(cty.StringVal("a"), cty.NumberIntVal(2)))
	if d.HasErrors() || strings.Join(to, ",") != "a,2" {
		t.Errorf("to = %v %v", to, d)
	}

	_, diags := Parse([]byte("namespace \"/\" {\n  on_connect {\n    emit \"x\" { args = [argz] }\n  }\n}\n"), "test.hcl")
	if d := firstError(diags); d == nil || !strings.Contains(d.Detail, "available: auth, query, headers, socket, user, data.") {
		t.Errorf("diags = %v", diags)
	}
}

func TestWriteDiagnostics(t *testing.T) {
	src := []byte("server {\n  ping_interval = \"soon\"\n}\n")
	_, diags := Parse(src, "config.hcl")
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, SourceFile("config.hcl", src), diags); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"config.hcl:2:19: Error: Invalid duration",
		"on config.hcl line 2, in server:",
		`   2:   ping_interval = "soon"`,
		`"soon" is not a duration`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// Without files, sources are read from disk.
	_, diags = Load("testdata/bad.hcl")
	buf.Reset()
	if err := WriteDiagnostics(&buf, nil, diags); err != nil {
		t.Fatal(err)
	}
	out = buf.String()
	if !strings.Contains(out, "testdata/bad.hcl:3:5: Error: Unsupported argument") || !strings.Contains(out, `   3:     shout = true`) {
		t.Errorf("output:\n%s", out)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1MB": 1000000, "1MiB": 1048576, "16KB": 16000, "16kib": 16384, "512B": 512, "1000000": 1000000,
		"2 GB": 2000000000, "1.5KiB": 1536,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "1XB", "1.2.3", "-1", "0.5B"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"10/s": 10, "30/m": 0.5, "2.5/s": 2.5, "120 / min": 2} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"10", "0/s", "-1/s", "x/s", "10/h", "1e3/s"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) succeeded", in)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"*", "", true}, {"*", "anything", true}, {"room:*", "room:1", true}, {"room:*", "room:", true},
		{"room:*", "rooms", false}, {"a?c", "abc", true}, {"a?c", "ac", false}, {"*:*:x", "a:b:c:x", true},
		{"lobby", "lobby", true}, {"lobby", "lobby2", false}, {"ü?", "üß", true}, {"a*b*c", "aXbYbZc", true},
	} {
		if got := MatchGlob(c.p, c.s); got != c.ok {
			t.Errorf("MatchGlob(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

func TestJSON(t *testing.T) {
	in := `[{"room":"r","n":1.5,"big":12345678901234567890,"ok":true,"nil":null,"list":[1,"a"],"html":"<&>"},null,"x"]`
	v, err := ValueFromJSON([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := ValueToJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"big":12345678901234567890,"html":"<&>","list":[1,"a"],"n":1.5,"nil":null,"ok":true,"room":"r"},null,"x"]`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

func TestServerEmitAndServerEvent(t *testing.T) {
	cfg := mustParse(t, `
namespace "/" {
  event "announce" {
    server_emit {}
    server_emit {
      event = "audit"
      args  = [args[0].text, socket.id]
    }
  }
  server_event "announce" {
    broadcast {
      to    = args[0].room
      event = "announcement"
      args  = [args[0].text]
    }
    broadcast {}
    ack = { ok = true, n = length(args) }
  }
  server_event "audit" {}
}`)
	ns := cfg.Namespace("/")
	se := stepsOf[*serverEmitStep](ns.Events["announce"])
	if len(se) != 2 || se[0].event != "announce" || !se[0].args.Passthrough || se[1].event != "audit" || se[1].args.Passthrough {
		t.Fatalf("server emits %+v", se)
	}
	ev := ns.ServerEvents["announce"]
	if ev == nil || len(ev.Broadcasts) != 2 || ev.Ack == nil || ns.ServerEvents["audit"] == nil || ns.ServerEvents["audit"].Ack != nil {
		t.Fatalf("server events %+v", ns.ServerEvents)
	}
	b := ev.Broadcasts[0]
	if b.Event != "announcement" || b.Args.Passthrough || ev.Broadcasts[1].Event != "announce" || !ev.Broadcasts[1].Args.Passthrough {
		t.Fatalf("broadcasts %+v %+v", b, ev.Broadcasts[1])
	}
	args := (&Scope{Args: cty.TupleVal([]cty.Value{cty.ObjectVal(map[string]cty.Value{
		"room": cty.StringVal("r"), "text": cty.StringVal("hi")})})}).EvalContext()
	if to, d := EvalStrings(b.To, args); d.HasErrors() || len(to) != 1 || to[0] != "r" {
		t.Fatalf("to %v %v", to, d)
	}
	v, d := ev.Ack.Value(args)
	if j, err := ValueToJSON(v); d.HasErrors() || err != nil || string(j) != `{"n":1,"ok":true}` {
		t.Fatalf("ack %s %v %v", j, d, err)
	}
}

func TestAPIBlock(t *testing.T) {
	t.Setenv("API_TOKEN", "0123456789abcdef0123")
	cfg := mustParse(t, "server {\n  api {\n    token = env(\"API_TOKEN\")\n  }\n}\n")
	if cfg.Server.API == nil || cfg.Server.API.Token != "0123456789abcdef0123" || cfg.Server.API.RedactAuth != nil {
		t.Fatalf("api %+v", cfg.Server.API)
	}
	cfg = mustParse(t, "server {\n  api {\n    token = env(\"API_TOKEN\")\n    redact_auth = [\"password\", \"pin\"]\n  }\n}\n")
	if got := cfg.Server.API.RedactAuth; len(got) != 2 || got[0] != "password" || got[1] != "pin" {
		t.Fatalf("redact_auth %q", got)
	}
	if cfg := mustParse(t, ""); cfg.Server.API != nil {
		t.Fatal("the API is on without an api block")
	}
}
