package sdk_test

import (
	"context"
	"strings"
	"testing"

	"github.com/socketfleet/socketfleet/sdk"
)

func TestHandshakeAndPluginSets(t *testing.T) {
	h := sdk.Handshake()
	if h.ProtocolVersion != sdk.ProtocolVersion || h.MagicCookieKey != "SOCKETFLEET_PLUGIN" || h.MagicCookieValue == "" {
		t.Errorf("Handshake = %+v", h)
	}
	set := sdk.HostPlugins()
	if len(set) != len(sdk.Kinds()) {
		t.Errorf("HostPlugins has %d entries, want %d", len(set), len(sdk.Kinds()))
	}
	for _, k := range sdk.Kinds() {
		if set[string(k)] == nil {
			t.Errorf("HostPlugins lacks %q", k)
		}
	}
	served, err := sdk.ServePlugins(newFakeAuth())
	if err != nil || len(served) != 1 || served["auth"] == nil {
		t.Errorf("ServePlugins(auth) = %v, %v", served, err)
	}
}

// lifecycleOnly implements the lifecycle and no kind.
type lifecycleOnly struct{ info sdk.Info }

func (l lifecycleOnly) Info() sdk.Info                            { return l.info }
func (lifecycleOnly) ConfigSchema() sdk.Schema                    { return sdk.Schema{} }
func (lifecycleOnly) Configure(context.Context, sdk.Config) error { return nil }

// twoKinds is both an Authenticator and a Sharder.
type twoKinds struct {
	lifecycleOnly
}

func (twoKinds) Authenticate(context.Context, *sdk.AuthRequest) (*sdk.AuthDecision, error) {
	return &sdk.AuthDecision{}, nil
}

func (twoKinds) Assign(context.Context, string) (*sdk.Assignment, error) {
	return &sdk.Assignment{}, nil
}

func TestKindOf(t *testing.T) {
	info := func(k sdk.Kind) sdk.Info { return sdk.Info{Kind: k, Name: "x", ProtocolVersion: sdk.ProtocolVersion} }
	for _, c := range []struct {
		name string
		p    sdk.Plugin
		want sdk.Kind
		err  string
	}{
		{"auth", newFakeAuth(), sdk.KindAuth, ""},
		{"both, says sharding", twoKinds{lifecycleOnly{info(sdk.KindSharding)}}, sdk.KindSharding, ""},
		{"both, says auth", twoKinds{lifecycleOnly{info(sdk.KindAuth)}}, sdk.KindAuth, ""},
		{"both, says metrics", twoKinds{lifecycleOnly{info(sdk.KindMetrics)}}, "", `Info().Kind is "metrics", but it implements the interface of ["auth" "sharding"]`},
		{"none", lifecycleOnly{info(sdk.KindAuth)}, "", "implements none of the plugin kind interfaces"},
		{"old protocol", twoKinds{lifecycleOnly{sdk.Info{Kind: sdk.KindAuth, Name: "x"}}}, "", "reports plugin protocol 0 in Info(), this sdk speaks 1"},
		{"nil", nil, "", "nil plugin"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := sdk.KindOf(c.p)
			switch {
			case c.err == "" && (err != nil || got != c.want):
				t.Errorf("KindOf = %q, %v; want %q", got, err, c.want)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Errorf("KindOf = %q, %v; want an error saying %q", got, err, c.err)
			}
			if c.err != "" {
				if _, err := sdk.ServePlugins(c.p); err == nil {
					t.Error("ServePlugins accepted it")
				}
			}
		})
	}
}
