//go:build !amd64

package engineio

import "unsafe"

// prefetch and prefetch2 are no-ops where no prefetch instruction is
// wired up (prefetch_amd64.s).
func prefetch(unsafe.Pointer) {}

func prefetch2(unsafe.Pointer) {}
