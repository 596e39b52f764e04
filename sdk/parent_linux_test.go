//go:build linux

package sdk_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/socketfleet/socketfleet/sdk"
)

const hostHelperEnv = "SDK_TEST_HOST_HELPER"

// runHostHelper is a minimal host: it launches the plugin at path with
// go-plugin (no Pdeathsig), dispenses it, prints the plugin's pid and waits
// to be killed.
func runHostHelper(path string) {
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), "TESTPLUGIN_KIND=auth", "TESTPLUGIN_IGNORE_SIGPIPE=1")
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake(),
		Plugins:          sdk.HostPlugins(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.NewNullLogger(),
	})
	rpc, err := client.Client()
	if err == nil {
		_, err = rpc.Dispense(string(sdk.KindAuth))
	}
	if err != nil {
		fmt.Printf("error %v\n", err)
		client.Kill()
		os.Exit(1)
	}
	fmt.Printf("pid %d\n", client.ReattachConfig().Pid)
	select {}
}

func runtimeGoexit() { runtime.Goexit() }

// TestServeExitsWhenHostDies kills a host with SIGKILL and checks that its
// plugin exits on its own within 2 s. The test process becomes a child
// subreaper, so the orphaned plugin is re-parented to it (its parent pid
// changes, as it would to init's) and can be reaped here with its status.
// The plugin ignores SIGPIPE, so only the sdk's parent watch can end it.
func TestServeExitsWhenHostDies(t *testing.T) {
	bin := testplugin(t)
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Skipf("prctl(PR_SET_CHILD_SUBREAPER): %v", errno)
	}
	defer syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 0, 0)

	host := exec.Command(os.Args[0], "-test.run=^$")
	host.Env = append(os.Environ(), hostHelperEnv+"="+bin)
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = host.Process.Kill(); _ = host.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("host helper: %v", err)
	}
	pidText, ok := strings.CutPrefix(strings.TrimSpace(line), "pid ")
	if !ok {
		t.Fatalf("host helper: %q", line)
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil {
		t.Fatal(err)
	}

	if err := host.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = host.Wait()
	killed := time.Now()

	var ws syscall.WaitStatus
	for {
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if err != nil {
			t.Fatalf("wait4(%d): %v (was the plugin re-parented elsewhere?)", pid, err)
		}
		if got == pid {
			break
		}
		if time.Since(killed) > 2*time.Second {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			_, _ = syscall.Wait4(pid, &ws, 0, nil)
			t.Fatal("plugin still running 2s after its host was killed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("plugin exited %s after its host was killed", time.Since(killed).Round(time.Millisecond))
	if !ws.Exited() || ws.ExitStatus() != sdk.ParentGoneExitCode {
		t.Errorf("plugin ended with %v (exited %v, status %d, signal %v), want exit status %d from the parent watch",
			ws, ws.Exited(), ws.ExitStatus(), ws.Signal(), sdk.ParentGoneExitCode)
	}
}
