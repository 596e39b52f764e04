package engineio

import (
	"strconv"
	"time"
)

// Live are the options a config reload may change while the server
// serves. Each session takes them at its handshake: the heartbeat values
// a client was told stay its own; CORS and cookies apply to each request.
type Live struct {
	AllowedOrigins []string
	Credentials    bool
	SessionCookie  *Cookie
	InstanceCookie *Cookie
	PingInterval   time.Duration
	PingTimeout    time.Duration
}

// live is one version of Live with what is derived from it.
type live struct {
	Live
	openJSON []byte // the open packet after the sid, identical for every session
}

// SetLive replaces the live options (zero heartbeat values: the
// defaults); sessions opened from now on use them.
func (s *Server) SetLive(l Live) {
	if l.PingInterval <= 0 {
		l.PingInterval = 25 * time.Second
	}
	if l.PingTimeout <= 0 {
		l.PingTimeout = 20 * time.Second
	}
	v := &live{Live: l}
	v.openJSON = []byte(`,"pingInterval":` + strconv.FormatInt(l.PingInterval.Milliseconds(), 10) +
		`,"pingTimeout":` + strconv.FormatInt(l.PingTimeout.Milliseconds(), 10) +
		`,"maxPayload":` + strconv.FormatInt(s.opts.MaxPayload, 10) + `}`)
	s.hot.Store(v)
}

// Live returns the live options in force.
func (s *Server) Live() Live { return s.hot.Load().Live }
