package engineio

import "unsafe"

// prefetch starts loading the cache line at p without waiting for it
// (PREFETCHT0): a hint, never a fault, whatever p is.
//
//go:noescape
func prefetch(p unsafe.Pointer)

// prefetch2 is prefetch of the line at p and the next one, in one call.
//
//go:noescape
func prefetch2(p unsafe.Pointer)
