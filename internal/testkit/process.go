package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// StopGrace is how long Stop waits after SIGTERM before SIGKILL in cleanup.
const StopGrace = 5 * time.Second

// Process is a command started by Start.
type Process struct {
	Cmd  *exec.Cmd
	Name string  // for messages: the program's base name unless set
	Out  *Buffer // stdout and stderr, unless the caller set them
	done chan struct{}
	err  error
}

// Command is exec.Command with the test's environment plus env
// ("KEY=value").
func Command(name string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// Start runs cmd in its own process group (so that Stop also ends what it
// spawned: nginx's workers, a script's children) with its stdout and stderr,
// where not set, in p.Out. When the test ends it is stopped (Stop with
// StopGrace) and, if the test failed, its output logged.
func Start(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, Name: filepath.Base(cmd.Path), Out: &Buffer{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.Out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.Out
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if cmd.WaitDelay == 0 {
		// Wait returns even if a grandchild keeps an output pipe open.
		cmd.WaitDelay = 2 * time.Second
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.Name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop(StopGrace)
		if out := p.Out.String(); t.Failed() && out != "" {
			t.Logf("--- %s (pid %d) output ---\n%s", p.Name, p.PID(), out)
		}
	})
	return p
}

// PID is the process id (and its process group's).
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Done is closed when the process has exited and its output is collected.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is what Wait returned; valid once Done is closed.
func (p *Process) Err() error { return p.err }

// ExitCode is the exit code (-1 if killed by a signal); valid once Done is
// closed.
func (p *Process) ExitCode() int { return p.Cmd.ProcessState.ExitCode() }

// Wait waits at most within for the process to exit and reports whether
// it did.
func (p *Process) Wait(within time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(within):
		return false
	}
}

// WaitExit fails the test unless the process exits within the given time,
// and returns its exit code.
func (p *Process) WaitExit(t testing.TB, within time.Duration) int {
	t.Helper()
	if !p.Wait(within) {
		t.Fatalf("%s (pid %d) still running after %v", p.Name, p.PID(), within)
	}
	return p.ExitCode()
}

// Stop ends the process: SIGTERM, then after grace SIGKILL to its whole
// group; it returns once the process has exited, and reports whether it
// exited on SIGTERM (or had already exited). Safe to call more than once.
func (p *Process) Stop(grace time.Duration) bool {
	if p.Exited() {
		p.killGroup()
		return true
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	ok := p.Wait(grace)
	p.killGroup()
	<-p.done
	return ok
}

// Kill sends SIGKILL to the process group and waits for the exit.
func (p *Process) Kill() {
	p.killGroup()
	<-p.done
}

// killGroup kills the group and the process itself (in case it left the
// group), so that waiting for it cannot hang.
func (p *Process) killGroup() {
	_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
	_ = p.Cmd.Process.Kill()
}

func (p *Process) String() string { return fmt.Sprintf("%s (pid %d)", p.Name, p.PID()) }
