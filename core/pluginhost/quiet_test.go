package pluginhost_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/sdk"
)

// loud lists the entries at info or above that mention the plugin's exit.
func loud(hook *test.Hook) []string {
	var out []string
	for _, e := range hook.AllEntries() {
		if e.Level <= logrus.InfoLevel && (strings.Contains(e.Message, "exit") || strings.Contains(e.Message, "kill")) {
			out = append(out, e.Level.String()+": "+e.Message)
		}
	}
	return out
}

// A plugin the host stops on purpose is not reported as failing, even when
// it takes longer to exit than go-plugin waits (here: a stopped process the
// host ends up killing): go-plugin's lines about it ("plugin process
// exited" with "signal: killed", an error otherwise) are debug then.
func TestStopOnPurposeIsNotAnAlarm(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the process state from /proc")
	}
	// No health check meanwhile: the supervisor would (rightly) call a
	// stopped plugin down.
	h, hook := newHost(t, pluginhost.Options{HealthInterval: time.Minute})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo", CallTimeout: 10 * time.Second})
	if err := p.Configure(ctx5(t), sdk.Config(`{"greeting":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	go func() { // SIGSTOPs the plugin: it cannot exit when asked
		_, _ = p.Authenticator().Authenticate(context.Background(), &sdk.AuthRequest{Namespace: "/", Auth: json.RawMessage(`{"stop":true}`)})
	}()
	pid := p.State().PID
	eventually(t, 3*time.Second, "the plugin stopped", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		f := strings.Fields(string(b))
		return err == nil && len(f) > 2 && f[2] == "T"
	})
	h.Close()
	if !hasLog(hook, func(e *logrus.Entry) bool {
		return e.Message == "plugin process exited" && e.Data["error"] == "signal: killed" && e.Level == logrus.DebugLevel
	}) {
		t.Fatal("no debug line of the killed plugin: the test did not exercise a slow exit")
	}
	if l := loud(hook); len(l) > 0 {
		t.Errorf("stopping on purpose logged %q", l)
	}
}

// Quiet (validate) logs what a plugin says at debug.
func TestQuietHostLogsPluginOutputAtDebug(t *testing.T) {
	h, hook := newHost(t, pluginhost.Options{Quiet: true})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo"})
	if err := p.Configure(ctx5(t), sdk.Config(`{"greeting":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := authenticate(t, p.Authenticator(), `{"say":"said on stderr"}`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the plugin's line in the log", func() bool {
		return hasLog(hook, func(e *logrus.Entry) bool { return e.Message == "said on stderr" })
	})
	h.Close()
	for _, e := range hook.AllEntries() {
		if e.Data["plugin"] == "auth.echo" && e.Level < logrus.DebugLevel && e.Message != "plugin started" {
			t.Errorf("quiet host logged %s: %q", e.Level, e.Message)
		}
	}
}
