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

// Limits are the limits against hostile clients a config reload may
// change while the server serves (Options has their meaning). Unlike Live
// they apply to every session at once: a session's packet bucket (its
// theoretical arrival time) carries over, measured from now on against
// the new rate and burst.
type Limits struct {
	PacketRate        float64 // negative: off; 0: the default
	PacketBurst       int
	BodyTimeout       time.Duration
	MaxHandshakeBytes int
}

// clientLimits is one version of Limits in the form the hot paths use.
type clientLimits struct {
	Limits                  // as set, defaults filled in
	rateEvery         int64 // ns per packet at PacketRate; 0: no limit
	rateSlack         int64 // how far ahead of now a session may be: the burst
	bodyTimeout       time.Duration
	maxHandshakeBytes int
}

// SetLimits replaces the limits (zero values: the defaults); the next
// packet, request or handshake of every session is held to them.
func (s *Server) SetLimits(l Limits) {
	if l.PacketRate == 0 {
		l.PacketRate = DefaultPacketRate
	}
	if l.PacketBurst <= 0 {
		l.PacketBurst = DefaultPacketBurst
	}
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	if l.MaxHandshakeBytes <= 0 {
		l.MaxHandshakeBytes = DefaultMaxHandshakeBytes
	}
	c := &clientLimits{Limits: l, bodyTimeout: l.BodyTimeout, maxHandshakeBytes: l.MaxHandshakeBytes}
	if l.PacketRate > 0 {
		c.rateEvery = int64(float64(time.Second) / l.PacketRate)
		c.rateSlack = c.rateEvery * int64(l.PacketBurst-1)
	}
	s.lim.Store(c)
}
