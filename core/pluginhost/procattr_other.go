//go:build !linux

package pluginhost

import "os/exec"

// setProcAttr: parent-death signals are Linux-only; elsewhere go-plugin's
// Kill at shutdown is all there is.
func setProcAttr(cmd *exec.Cmd) {}
