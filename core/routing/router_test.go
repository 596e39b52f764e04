package routing

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/zclconf/go-cty/cty"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/protocol/siowire"
)

// fakeSocket records what the router does to a socket. It is a unit-test
// double of the socket interface; test/e2e drives real sockets.
type fakeSocket struct {
	id, user string
	auth     []byte
	query    map[string]string
	rooms    []string // its own id first, like socketio
	state    any
	discard  bool // benchmarks: record nothing

	emits        []string // `event args...` as JSON, attachments counted: `event ["a"] +1`
	acks         []string // the ack array
	broadcasts   []string // `rooms|except|data +atts`
	serverEmits  []string // `data +atts`
	disconnected bool
}

func newFake(id string) *fakeSocket {
	return &fakeSocket{id: id, auth: []byte(`{}`), rooms: []string{id}}
}

func atts(a [][]byte) string {
	if len(a) == 0 {
		return ""
	}
	return " +" + strings.Repeat("b", len(a))
}

func (f *fakeSocket) ID() string      { return f.id }
func (f *fakeSocket) User() string    { return f.user }
func (f *fakeSocket) Auth() []byte    { return f.auth }
func (f *fakeSocket) Rooms() []string { return f.rooms }
func (f *fakeSocket) State() any      { return f.state }
func (f *fakeSocket) SetState(v any)  { f.state = v }
func (f *fakeSocket) Disconnect(bool) { f.disconnected = true }

func (f *fakeSocket) Join(rooms ...string) error {
	for _, r := range rooms {
		if !contains(f.rooms, r) {
			f.rooms = append(f.rooms, r)
		}
	}
	return nil
}

func (f *fakeSocket) JoinSocketRooms(rooms ...string) error { return f.Join(rooms...) }

func (f *fakeSocket) Leave(rooms ...string) {
	kept := f.rooms[:0]
	for _, r := range f.rooms {
		if !contains(rooms, r) {
			kept = append(kept, r)
		}
	}
	f.rooms = kept
}

func (f *fakeSocket) Emit(event string, args, attachments [][]byte) {
	if !f.discard {
		f.emits = append(f.emits, string(siowire.AppendEvent(nil, event, args))+atts(attachments))
	}
}

func (f *fakeSocket) Ack(args, attachments [][]byte) {
	if !f.discard {
		f.acks = append(f.acks, string(siowire.AppendArray(nil, args...))+atts(attachments))
	}
}

func (f *fakeSocket) Broadcast(t config.Target, data []byte, attachments [][]byte) {
	if !f.discard {
		f.broadcasts = append(f.broadcasts, strings.Join(t.Rooms, ",")+"|"+strings.Join(t.Except, ",")+"|"+string(data)+atts(attachments))
	}
}

func (f *fakeSocket) ServerSideEmit(data []byte, attachments [][]byte) {
	if !f.discard {
		f.serverEmits = append(f.serverEmits, string(data)+atts(attachments))
	}
}

func (f *fakeSocket) Scope() (config.Scope, error) {
	auth, err := config.ValueFromJSON(f.auth)
	if err != nil {
		return config.Scope{}, err
	}
	return config.Scope{Auth: auth, SocketID: f.id, Namespace: "/", User: f.user, Query: f.query}, nil
}

func contains(xs []string, x string) bool {
	for _, e := range xs {
		if e == x {
			return true
		}
	}
	return false
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// newRouter returns the router of namespace "/" declared by src.
func newRouter(t testing.TB, src string) (*Router, *Stats) {
	t.Helper()
	cfg, diags := config.Parse([]byte(src), "test.hcl")
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	stats := &Stats{}
	return New(cfg.Namespace("/"), Plugins{}, stats, quietLog()), stats
}

// ev builds an event from raw JSON arguments; "+b" arguments add attachments.
func ev(name string, wantsAck bool, args ...string) config.Event {
	var raw, attachments [][]byte
	for _, a := range args {
		if a == "+b" {
			attachments = append(attachments, []byte{0xde, 0xad})
			continue
		}
		raw = append(raw, []byte(a))
	}
	data := siowire.AppendEvent(nil, name, raw)
	size := len(data)
	for _, a := range attachments {
		size += len(a)
	}
	return config.Event{Name: name, Args: raw, Data: data, Attachments: attachments, WantsAck: wantsAck, Size: size}
}

// send runs one event through the router, as Router.Event does.
func send(r *Router, s *fakeSocket, e config.Event) { r.event(s, &config.Exec{Event: e}) }

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func eqList(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestJoinLeaveAllowAndAcks(t *testing.T) {
	r, stats := newRouter(t, `
namespace "/" {
  event "join" {
    join {
      room  = try(args[0].room, args[0])
      allow = ["public:*", "user:${auth.user}"]
    }
  }
  event "leave" {
    leave { room = args }
  }
}`)
	s := newFake("s1")
	s.auth = []byte(`{"user":"ann"}`)
	send(r, s, ev("join", true, `"public:a"`))
	send(r, s, ev("join", true, `{"room":"user:ann"}`))
	send(r, s, ev("join", true, `"user:bob"`))
	send(r, s, ev("join", false, `"public:b"`))
	eqList(t, "rooms", s.rooms, "s1", "public:a", "user:ann", "public:b")
	eqList(t, "acks", s.acks, `[{"ok":true}]`, `[{"ok":true}]`, `[{"ok":false,"error":"room not allowed"}]`)
	eq(t, "room denied", stats.RoomDenied.Load(), 1)
	eq(t, "events", stats.Events.Load(), 3)

	send(r, s, ev("leave", true, `"public:a"`, `"public:b"`))
	eqList(t, "rooms after leave", s.rooms, "s1", "user:ann")
}

func TestBroadcast(t *testing.T) {
	r, stats := newRouter(t, `
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
  event "chat" {
    broadcast { to = args[0].room }
  }
  event "shout" {
    broadcast {
      event         = "shouted"
      except_sender = true
    }
  }
  event "note" {
    broadcast {
      to             = ["a", "b"]
      require_member = false
      args           = [{ from = socket.id, text = upper(args[0].text) }]
    }
  }
}`)
	s := newFake("s1")
	msg := `{"room":"lobby", "text":"hi",  "n":1.50}`

	// Not a member: nothing sent, a default ack refuses.
	send(r, s, ev("chat", true, msg))
	eqList(t, "broadcasts before join", s.broadcasts)
	eqList(t, "acks before join", s.acks, `[{"ok":false,"error":"not a member of the room"}]`)
	eq(t, "room denied", stats.RoomDenied.Load(), 1)

	// A member: the bytes received go out as they are, binary included.
	send(r, s, ev("join", false, `"lobby"`))
	send(r, s, ev("chat", true, msg, "+b"))
	send(r, s, ev("shout", false, `"x"`, `{"b":1,"a":2}`))
	send(r, s, ev("note", false, `{"text":"yo"}`))
	eqList(t, "broadcasts", s.broadcasts,
		`lobby||["chat",`+msg+`] +b`,
		`|s1|["shouted","x",{"b":1,"a":2}]`,
		`a,b||["note",{"from":"s1","text":"YO"}]`)
	eqList(t, "acks", s.acks, `[{"ok":false,"error":"not a member of the room"}]`, `[{"ok":true}]`)
}

func TestServerEmit(t *testing.T) {
	r, stats := newRouter(t, `
namespace "/" {
  event "announce" {
    server_emit {}
    server_emit {
      event = "audit"
      args  = [args[0].text, socket.id]
    }
  }
}`)
	s := newFake("s1")
	send(r, s, ev("announce", false, `{"text":"hi"}`, "+b"))
	eqList(t, "server emits", s.serverEmits, `["announce",{"text":"hi"}] +b`, `["audit","hi","s1"]`)
	eq(t, "server emits counted", stats.ServerEmits.Load(), 2)
}

func TestReplyAndAck(t *testing.T) {
	r, _ := newRouter(t, `
namespace "/" {
  event "echo" {
    reply {
      event = "echoed"
      args  = args
    }
    ack = args
  }
  event "shaped" {
    reply {
      event = "shaped"
      args  = [length(args), args[0].a]
    }
    ack = [{ ok = true, id = socket.id }]
  }
}`)
	s := newFake("s1")
	send(r, s, ev("echo", true, `{"z":1, "a":[1.0]}`, `"x"`, "+b"))
	send(r, s, ev("echo", false, `1`))
	send(r, s, ev("shaped", true, `{"a":"b"}`))
	eqList(t, "emits", s.emits, `["echoed",{"z":1, "a":[1.0]},"x"] +b`, `["echoed",1]`, `["shaped",1,"b"]`)
	eqList(t, "acks", s.acks, `[{"z":1, "a":[1.0]},"x"] +b`, `[{"id":"s1","ok":true}]`)
}

// A bare `auth` or `args[N]` element is sent as the bytes received.
func TestArgsPassThroughRaw(t *testing.T) {
	r, _ := newRouter(t, `
namespace "/" {
  on_connect {
    emit "hello" { args = [auth, socket.id, query.v] }
  }
  event "e" {
    reply {
      event = "r"
      args  = [auth, args[1], "k"]
    }
  }
}`)
	s := newFake("s1")
	s.auth = []byte(`{"tok": "x",  "n":10}`)
	s.query = map[string]string{"v": "2"}
	r.connected(s)
	send(r, s, ev("e", false, `0`, `{"b":1,"a":2.50}`))
	eqList(t, "emits", s.emits,
		`["hello",{"tok": "x",  "n":10},"s1","2"]`,
		`["r",{"tok": "x",  "n":10},{"b":1,"a":2.50},"k"]`)
}

func TestMaxSize(t *testing.T) {
	r, stats := newRouter(t, `
namespace "/" {
  event "join" {
    max_size = 30
    join { room = args[0] }
  }
}`)
	s := newFake("s1")
	send(r, s, ev("join", true, `"a-room-name-too-long-to-fit"`))
	send(r, s, ev("join", true, `"ok"`, "+b")) // 13 bytes of JSON, 2 of attachment
	eqList(t, "rooms", s.rooms, "s1", "ok")
	eqList(t, "acks", s.acks, `[{"ok":false,"error":"payload too large"}]`, `[{"ok":true}]`)
	eq(t, "too large", stats.TooLarge.Load(), 1)
	eq(t, "events", stats.Events.Load(), 1)
}

func TestRateLimit(t *testing.T) {
	r, stats := newRouter(t, `
namespace "/" {
  event "other" {}
  event "ping" {
    rate_limit = "2/s"
    reply { event = "pong" }
  }
}`)
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	s := newFake("s1")
	for range 3 {
		send(r, s, ev("ping", true))
	}
	eq(t, "pongs", len(s.emits), 2)
	eqList(t, "acks", s.acks, `[{"ok":true}]`, `[{"ok":true}]`, `[{"ok":false,"error":"rate limited"}]`)
	eq(t, "rate limited", stats.RateLimited.Load(), 1)

	now = now.Add(500 * time.Millisecond) // one token back
	send(r, s, ev("ping", false))
	send(r, s, ev("ping", false))
	eq(t, "pongs after 0.5s", len(s.emits), 3)
	eq(t, "rate limited", stats.RateLimited.Load(), 2)

	// The bucket is per socket.
	other := newFake("s2")
	send(r, other, ev("ping", false))
	eq(t, "other socket's pongs", len(other.emits), 1)
}

// A RUNTIME expression that fails on an event's data stops the rule there.
func TestRuntimeExpressionFails(t *testing.T) {
	r, stats := newRouter(t, `
namespace "/" {
  event "join" {
    join { room = args[0].room }
    reply {
      event = "joined"
      args  = [args[0].room]
    }
  }
  event "late" {
    reply { event = "first" }
    ack = [tonumber(args[0])]
  }
}`)
	s := newFake("s1")
	send(r, s, ev("join", true, `"not-an-object"`))
	send(r, s, ev("join", true, `{"room":""}`))
	eqList(t, "rooms", s.rooms, "s1")
	eqList(t, "emits", s.emits)
	send(r, s, ev("late", true, `"x"`))
	eqList(t, "emits", s.emits, `["first","x"]`) // steps before the failure ran
	eqList(t, "acks", s.acks,
		`[{"ok":false,"error":"invalid event data"}]`,
		`[{"ok":false,"error":"invalid event data"}]`,
		`[{"ok":false,"error":"invalid event data"}]`)
	eq(t, "rule errors", stats.RuleErrors.Load(), 3)
	eq(t, "events", stats.Events.Load(), 1) // "late" reached its answer
}

func TestUnknownEvents(t *testing.T) {
	for _, mode := range []string{"drop", "disconnect"} {
		r, stats := newRouter(t, `namespace "/" {
  unknown_events = "`+mode+`"
}`)
		s := newFake("s1")
		send(r, s, ev("nope", true))
		eq(t, mode+": unknown", stats.Unknown.Load(), 1)
		eq(t, mode+": disconnected", s.disconnected, mode == "disconnect")
		eqList(t, mode+": acks", s.acks)
		if s.state != nil {
			t.Errorf("%s: state made for an unknown event", mode)
		}
	}
}

// The variables of the rule's expressions are built once per socket.
func TestSocketVariablesCached(t *testing.T) {
	r, _ := newRouter(t, `
namespace "/" {
  event "who" {
    reply {
      event = "me"
      args  = [auth.name]
    }
  }
}`)
	s := newFake("s1")
	s.auth = []byte(`{"name":"ann"}`)
	send(r, s, ev("who", false))
	s.auth = []byte(`{"name":"changed"}`)
	send(r, s, ev("who", false))
	eqList(t, "emits", s.emits, `["me","ann"]`, `["me","ann"]`)
	if st := s.state.(*socketState); st.base == nil || !st.base.Variables["auth"].GetAttr("name").RawEquals(cty.StringVal("ann")) {
		t.Errorf("base context %+v", st.base)
	}
}

const benchConfig = `
namespace "/" {
  event "join" {
    max_size   = "1KB"
    rate_limit = "100000000/s"
    join {
      room  = try(args[0].room, args[0])
      allow = ["*"]
    }
  }
  event "chat" {
    max_size   = "16KB"
    rate_limit = "100000000/s"
    broadcast {
      to            = args[0].room
      except_sender = true
    }
  }
  event "eval" {
    broadcast {
      to            = args[0].room
      except_sender = true
      args          = [{ from = socket.id, text = args[0].text }]
    }
  }
  event "static" {
    broadcast {
      to            = "lobby"
      except_sender = true
    }
  }
}`

// BenchmarkEvent is the router's per-event path with a socket that
// records nothing: the rule's steps, the expressions, no delivery.
func BenchmarkEvent(b *testing.B) {
	r, stats := newRouter(b, benchConfig)
	s := newFake("s1")
	s.discard = true
	s.rooms = append(s.rooms, "lobby")
	for _, c := range []struct{ name, arg string }{
		{"join", `"lobby"`},
		{"chat", `{"room":"lobby","text":"hello world","from":"alice"}`},
		{"eval", `{"room":"lobby","text":"hello world"}`},
		{"static", `{"text":"hello world"}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			x := &config.Exec{Event: ev(c.name, false, c.arg)}
			b.ReportAllocs()
			for b.Loop() {
				r.event(s, x)
			}
		})
	}
	if stats.RuleErrors.Load() != 0 || stats.RateLimited.Load() != 0 || stats.RoomDenied.Load() != 0 {
		b.Fatalf("errors %d, rate limited %d, denied %d", stats.RuleErrors.Load(), stats.RateLimited.Load(), stats.RoomDenied.Load())
	}
}
