package routing

import (
	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/core/socketio"
)

// socket is what the router needs of a client's socket: what actions do to
// it (config.Socket), its per-socket state, the variables expressions read,
// and a way out. sioSocket implements it; the unit tests use a double.
type socket interface {
	config.Socket
	State() any
	SetState(v any)
	Scope() (config.Scope, error) // auth, query, headers, socket, user, data
	Disconnect(close bool)
}

// sioSocket is a socketio socket and the event it is handling (nil outside
// events: Ack is then a no-op).
type sioSocket struct {
	s *socketio.Socket
	e *socketio.Event
}

var _ socket = (*sioSocket)(nil)

func (k *sioSocket) ID() string                        { return k.s.ID() }
func (k *sioSocket) User() string                      { return k.s.User() }
func (k *sioSocket) Auth() []byte                      { return k.s.Auth() }
func (k *sioSocket) Rooms() []string                   { return k.s.Rooms() }
func (k *sioSocket) Join(r ...string) error            { return k.s.Join(r...) }
func (k *sioSocket) JoinSocketRooms(r ...string) error { return k.s.JoinSocketRooms(r...) }
func (k *sioSocket) Leave(r ...string)                 { k.s.Leave(r...) }
func (k *sioSocket) State() any                        { return k.s.State() }
func (k *sioSocket) SetState(v any)                    { k.s.SetState(v) }
func (k *sioSocket) Disconnect(c bool)                 { k.s.Disconnect(c) }
func (k *sioSocket) Emit(event string, args, attachments [][]byte) {
	k.s.Emit(event, args, attachments)
}

func (k *sioSocket) Ack(args, attachments [][]byte) {
	if k.e != nil {
		k.s.Ack(k.e, args, attachments)
	}
}

func (k *sioSocket) Broadcast(t config.Target, data []byte, attachments [][]byte) {
	k.s.Namespace().BroadcastData(rooms.Options{Rooms: t.Rooms, Except: t.Except}, data, attachments)
}

func (k *sioSocket) ServerSideEmit(data []byte, attachments [][]byte) {
	k.s.Namespace().ServerSideEmitAsync(data, attachments)
}

func (k *sioSocket) Scope() (config.Scope, error) {
	auth, err := config.ValueFromJSON(k.s.Auth())
	if err != nil {
		return config.Scope{}, err
	}
	data, err := config.ValueFromJSON(k.s.Data())
	if err != nil {
		return config.Scope{}, err
	}
	hs := k.s.Handshake()
	return config.Scope{Auth: auth, SocketID: k.s.ID(), Namespace: k.s.Namespace().Name(),
		User: k.s.User(), Data: data,
		Query: firstValues(hs.Query(), false), Headers: firstValues(hs.Header(), true)}, nil
}
