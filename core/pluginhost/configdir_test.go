package pluginhost_test

import (
	"path/filepath"
	"testing"

	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/sdk"
)

// The config folder reaches the plugin's Configure, at launch and after a
// restart (authecho echoes it in its decision's data).
func TestConfigDirReachesThePlugin(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	dir := filepath.Join(t.TempDir(), "etc")
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo", ConfigDir: dir})
	if err := p.Configure(ctx5(t), sdk.Config(`{"greeting":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	d, err := authenticate(t, p.Authenticator(), `{}`)
	if err != nil {
		t.Fatal(err)
	}
	if d.ConfigDir != dir {
		t.Fatalf("plugin saw config dir %q, want %q", d.ConfigDir, dir)
	}
}
