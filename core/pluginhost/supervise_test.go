package pluginhost_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/sdk"
)

func TestKill9Restart(t *testing.T) {
	h, hook := newHost(t, pluginhost.Options{})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo"})
	if err := p.Configure(ctx5(t), sdk.Config(`{"greeting":"remember me"}`)); err != nil {
		t.Fatal(err)
	}
	a := p.Authenticator() // kept across the restart
	d, err := authenticate(t, a, `{}`)
	if err != nil {
		t.Fatal(err)
	}
	old := d.PID

	killed := time.Now()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Calls fail fast with ErrUnavailable until it is back.
	sawDown := false
	wantCalls := 1 // the new process's calls, the one below included
	for p.State().Restarts == 0 {
		start := time.Now()
		d, err := authenticate(t, a, `{}`)
		took := time.Since(start)
		if err == nil {
			if d.PID != old { // the restart landed between the check and the call
				wantCalls++
				continue
			}
			if !p.State().Up || p.State().Restarts == 0 {
				// Only possible in the instant before the kill lands.
				if time.Since(killed) > 100*time.Millisecond {
					t.Fatal("call succeeded on a killed plugin")
				}
			}
			continue
		}
		if !errors.Is(err, pluginhost.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if took > 100*time.Millisecond {
			t.Fatalf("unavailable call took %s", took)
		}
		sawDown = true
		if time.Since(killed) > 5*time.Second {
			t.Fatal("not back within 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	back := time.Since(killed)
	t.Logf("back %s after kill -9", back.Round(time.Millisecond))
	if !sawDown {
		t.Fatal("never saw the plugin down")
	}
	if back > 2*time.Second {
		t.Fatalf("restart took %s", back)
	}
	st := p.State()
	if !st.Up || st.Restarts != 1 || st.PID == old || !strings.Contains(st.LastError, "exited") {
		t.Fatalf("State = %+v", st)
	}
	d, err = authenticate(t, a, `{}`)
	if err != nil {
		t.Fatal(err)
	}
	if d.PID == old || d.Config.Greeting != "remember me" || d.Calls != wantCalls {
		t.Fatalf("after restart: %+v (old pid %d)", d, old)
	}
	if alive(old) {
		t.Fatalf("old process %d still alive", old)
	}
	if s := p.Stats(); s.Restarts != 1 || s.Unavailable == 0 {
		t.Fatalf("Stats = %+v", s)
	}
	for _, msg := range []string{"plugin down; restarting", "plugin restarted"} {
		if !hasLog(hook, func(e *logrus.Entry) bool {
			return e.Message == msg && e.Data["plugin"] == "auth.echo" && e.Data["restarts"] != nil && e.Data["error"] != nil
		}) {
			t.Errorf("no %q log with plugin, restarts and error", msg)
		}
	}
}

// A process that stops answering (SIGSTOP) fails its health check, is
// killed and restarted.
func TestHealthCheckRestartsStoppedPlugin(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{HealthInterval: 100 * time.Millisecond})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo", CallTimeout: 300 * time.Millisecond})
	a := p.Authenticator()
	old := p.State().PID
	start := time.Now()
	_, err := authenticate(t, a, `{"stop":true}`)
	if err == nil {
		t.Fatal("call into a stopped plugin succeeded")
	}
	eventually(t, 5*time.Second, "restart", func() bool { return p.State().Restarts == 1 && p.State().Up })
	t.Logf("stopped plugin replaced after %s", time.Since(start).Round(time.Millisecond))
	if st := p.State(); !strings.Contains(st.LastError, "health check failed") {
		t.Fatalf("State = %+v", st)
	}
	if _, err := authenticate(t, a, `{}`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "old process gone", func() bool { return !alive(old) })
}

// Restarts back off while the binary is missing, and resume when it is back.
func TestRestartBackoffWhileBinaryMissing(t *testing.T) {
	dir := t.TempDir()
	bin := dir + "/auth-echo"
	copyFile(t, binDir+"/auth-echo", bin)
	h, _ := newHost(t, pluginhost.Options{BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo", Dir: dir, Where: "auth block"})
	moved := bin + ".away"
	if err := renameFile(bin, moved); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(p.State().PID, syscall.SIGKILL)
	eventually(t, 3*time.Second, "restart failure recorded", func() bool {
		return strings.Contains(p.State().LastError, "plugin binary not found")
	})
	if st := p.State(); st.Up || st.Restarts != 0 {
		t.Fatalf("State = %+v", st)
	}
	if err := renameFile(moved, bin); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "restart", func() bool { return p.State().Up })
	if st := p.State(); st.Restarts != 1 {
		t.Fatalf("State = %+v", st)
	}
}

func TestCloseLeavesNoChildren(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	ps := []*pluginhost.Plugin{
		launch(t, h, pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo"}),
		launch(t, h, pluginhost.Spec{Kind: sdk.KindAdapter, Name: "loop"}),
		launch(t, h, pluginhost.Spec{Kind: sdk.KindLogSink, Name: "collect"}),
	}
	link := ps[1].ClusterLink(pluginhost.LinkOptions{})
	link.Receive(func([]sdk.AdapterMessage) {})
	var pids []int
	for _, p := range ps {
		pid := p.State().PID
		if !alive(pid) {
			t.Fatalf("%d not alive", pid)
		}
		pids = append(pids, pid)
	}
	start := time.Now()
	h.Close()
	t.Logf("Close took %s", time.Since(start).Round(time.Millisecond))
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("child %d alive after Close", pid)
		}
	}
	h.Close() // idempotent
	link.Close()
	if _, err := authenticate(t, ps[0].Authenticator(), `{}`); !errors.Is(err, pluginhost.ErrUnavailable) {
		t.Fatalf("after Close: %v", err)
	}
	for _, st := range h.States() {
		if st.Up {
			t.Fatalf("up after Close: %+v", st)
		}
	}
	if _, err := h.Launch(ctx5(t), pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo", Dir: binDir}); err == nil {
		t.Fatal("Launch after Close succeeded")
	}
}

// A plugin that answers nothing (SIGSTOP from outside, no health check
// before Close) does not hang Close: it is SIGKILLed after the graceful wait.
func TestCloseKillsStoppedPlugin(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{HealthInterval: time.Minute})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAuth, Name: "echo"})
	pid := p.State().PID
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h.Close()
	took := time.Since(start)
	t.Logf("Close with a stopped plugin took %s", took.Round(time.Millisecond))
	if took > 6*time.Second {
		t.Fatalf("Close took %s", took)
	}
	if alive(pid) {
		t.Fatalf("stopped plugin %d alive after Close", pid)
	}
}
