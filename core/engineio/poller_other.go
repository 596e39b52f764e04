//go:build !linux

package engineio

// poller: elsewhere every WebSocket session keeps a reader goroutine.
type poller[T pollable] struct{}

func newPoller[T pollable]() *poller[T] { return nil }
func (p *poller[T]) park(T) bool        { return false }
func (p *poller[T]) forget(T)           {}
func (p *poller[T]) close()             {}
