package engineio

import "unsafe"

// prefetch starts loading the cache line at p without waiting for it
// (PREFETCHT0): a hint, never a fault, whatever p is.
//
//go:noescape
func prefetch(p unsafe.Pointer)

// prefetchAt follows depth pointers from pp, stopping at a nil one, and
// prefetches where the last points. In assembly: it reads words that other
// goroutines may be writing (a transport being attached), which is harmless
// for a hint (an aligned word is read whole; any address may be prefetched)
// but which Go code would have to lock for.
//
//go:noescape
func prefetchAt(pp unsafe.Pointer, depth int)
