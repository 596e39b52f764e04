package pluginhost

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel SIGKILL the plugin when the core dies, even by
// kill -9, so no plugin outlives it. Pdeathsig fires when the thread that
// forked the child exits; Go keeps its threads alive unless a goroutine
// exits while locked to one, which the host never does.
func setProcAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
