//go:build !linux

package engineio

// poller: elsewhere every WebSocket session keeps a reader goroutine.
type poller struct{}

func newPoller() *poller                  { return nil }
func (p *poller) park(*Session, int) bool { return false }
func (p *poller) forget(*Session, int)    {}
func (p *poller) close()                  {}
