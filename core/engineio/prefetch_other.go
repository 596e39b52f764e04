//go:build !amd64

package engineio

import "unsafe"

// prefetch is a no-op where no prefetch instruction is
// wired up (prefetch_amd64.s).
func prefetch(unsafe.Pointer) {}
