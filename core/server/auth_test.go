package server

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/socketfleet/socketfleet/core/routing"
	"github.com/socketfleet/socketfleet/sdk"
)

// tokenAuth accepts {"token":"ok:<user>"}, refuses anything else, and
// fails (as a dead plugin would) while down is set.
type tokenAuth struct{ down atomic.Bool }

func (a *tokenAuth) Info() sdk.Info                              { return sdk.Info{Kind: sdk.KindAuth, Name: "token"} }
func (a *tokenAuth) ConfigSchema() sdk.Schema                    { return sdk.Schema{} }
func (a *tokenAuth) Configure(context.Context, sdk.Config) error { return nil }
func (a *tokenAuth) Authenticate(_ context.Context, r *sdk.AuthRequest) (*sdk.AuthDecision, error) {
	if a.down.Load() {
		return nil, errors.New("plugin unavailable")
	}
	var p struct{ Token string }
	_ = json.Unmarshal(r.Auth, &p)
	user, ok := strings.CutPrefix(p.Token, "ok:")
	if !ok {
		return &sdk.AuthDecision{Message: "invalid token: bad", ErrorData: []byte(`{"reason":"bad"}`)}, nil
	}
	return &sdk.AuthDecision{Allow: true, UserID: user, Rooms: []string{"user:" + user},
		Data: []byte(`{"role":"admin","name":"` + user + `"}`)}, nil
}

// modShard puts users whose id has an even length on shard 0 (this one).
type modShard struct{}

func (modShard) Info() sdk.Info                              { return sdk.Info{Kind: sdk.KindSharding, Name: "mod"} }
func (modShard) ConfigSchema() sdk.Schema                    { return sdk.Schema{} }
func (modShard) Configure(context.Context, sdk.Config) error { return nil }
func (modShard) Assign(_ context.Context, user string) (*sdk.Assignment, error) {
	s := len(user) % 2
	return &sdk.Assignment{Shard: s, Local: s == 0, URL: "http://shard-" + string(rune('0'+s)) + ".example"}, nil
}

const authConfig = `
namespace "/" {
  on_connect {
    emit "me" { args = [user, data.role, socket.namespace] }
  }
  event "whoami" {
    ack = [user, data]
  }
  event "say" {
    broadcast {
      to   = "user:${user}"
      args = [{ from = user, text = args[0] }]
    }
  }
}
`

func TestAuthPluginDecisions(t *testing.T) {
	auth := &tokenAuth{}
	srv, ts := newPluginInstance(t, authConfig, routing.Plugins{Auth: auth})

	c := dialWS(t, ts)
	c.send(`40{"token":"nope"}`)
	if got := c.read(); got != `44{"message":"invalid token: bad","data":{"reason":"bad"}}` {
		t.Fatalf("refusal %q", got)
	}
	c.send(`40{"token":"ok:ann"}`)
	if got := c.read(); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("accept %q", got)
	}
	if got := c.read(); got != `42["me","ann","admin","/"]` {
		t.Fatalf("on_connect with user/data %q", got)
	}
	c.send(`421["whoami"]`)
	if got := c.read(); got != `431["ann",{"name":"ann","role":"admin"}]` {
		t.Fatalf("whoami %q", got)
	}
	// The auth decision's rooms were joined at connect.
	c.send(`42["say","hi"]`)
	if got := c.read(); got != `42["say",{"from":"ann","text":"hi"}]` {
		t.Fatalf("room from auth %q", got)
	}

	// Plugin down: new connections are refused, connected sockets stay.
	auth.down.Store(true)
	d := dialWS(t, ts)
	d.send(`40{"token":"ok:bob"}`)
	if got := d.read(); got != `44{"message":"authentication unavailable","data":{"reason":"auth_unavailable"}}` {
		t.Fatalf("while down %q", got)
	}
	c.send(`422["whoami"]`)
	if got := c.read(); !strings.HasPrefix(got, `432["ann"`) {
		t.Fatalf("connected socket while auth is down %q", got)
	}
	auth.down.Store(false)
	d.send(`40{"token":"ok:bob"}`)
	if got := d.read(); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("after recovery %q", got)
	}
	if srv.Routing.AuthRefused.Load() != 1 || srv.Routing.AuthFailed.Load() != 1 || srv.Routing.AuthAccepted.Load() != 2 {
		t.Fatalf("counters refused=%d failed=%d accepted=%d", srv.Routing.AuthRefused.Load(), srv.Routing.AuthFailed.Load(), srv.Routing.AuthAccepted.Load())
	}
}

func TestShardingSendsUsersToTheirShard(t *testing.T) {
	_, ts := newPluginInstance(t, `namespace "/" {}`, routing.Plugins{Auth: &tokenAuth{}, Sharding: modShard{}})
	c := dialWS(t, ts)
	c.send(`40{"token":"ok:bob"}`) // odd length: shard 1
	if got := c.read(); got != `44{"message":"Please connect to shard 1","data":{"shard":1,"url":"http://shard-1.example"}}` {
		t.Fatalf("wrong shard %q", got)
	}
	c.send(`40{"token":"ok:anne"}`)
	if got := c.read(); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("own shard %q", got)
	}
}
