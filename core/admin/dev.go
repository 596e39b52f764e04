package admin

import (
	"context"
	"encoding/json"
	"time"

	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/core/socketio"
	"github.com/socketfleet/socketfleet/sdk"
)

// maxAllSockets bounds the sockets all_sockets lists per namespace: the
// list is one packet, and a UI needs no more to be useful.
const maxAllSockets = 5000

// socketJSON is a socket as the UI shows it (lib/index.ts, serialize).
type socketJSON struct {
	ID        string          `json:"id"`
	ClientID  string          `json:"clientId"`
	Transport string          `json:"transport"`
	Nsp       string          `json:"nsp"`
	Data      json.RawMessage `json:"data"`
	Handshake json.RawMessage `json:"handshake"`
	Rooms     []string        `json:"rooms"`
}

// Wrap returns what a namespace is declared with in development mode: its
// handler and room index, reporting connections, events and room changes
// to the admin sockets. Outside development mode they are h and nil (the
// default index), untouched.
func (a *Admin) Wrap(nsp string, h socketio.Handler, maxRooms int) (socketio.Handler, rooms.Index) {
	if !a.Development() {
		return h, nil
	}
	m := rooms.NewMemory()
	if maxRooms <= 0 {
		maxRooms = rooms.DefaultMaxRooms
	}
	m.MaxRooms = maxRooms
	if _, ok := h.(socketio.ServerEventHandler); ok {
		return &devServerEvents{devHandler{a: a, nsp: nsp, inner: h}}, &devIndex{Memory: m, a: a, nsp: nsp}
	}
	return &devHandler{a: a, nsp: nsp, inner: h}, &devIndex{Memory: m, a: a, nsp: nsp}
}

type devHandler struct {
	a     *Admin
	nsp   string
	inner socketio.Handler
}

func (d *devHandler) Connect(s *socketio.Socket) error { return d.inner.Connect(s) }

func (d *devHandler) Connected(s *socketio.Socket) {
	d.inner.Connected(s)
	d.a.emitAll("socket_connected", d.a.local(s), jsTime(time.Now()))
}

func (d *devHandler) Event(s *socketio.Socket, e *socketio.Event) {
	args := make([]json.RawMessage, 0, 1+len(e.Args))
	args = append(args, jsonString(e.Name))
	for _, x := range e.Args {
		args = append(args, x)
	}
	d.a.emitAll("event_received", d.nsp, s.ID(), args, jsTime(time.Now()))
	d.inner.Event(s, e)
}

func (d *devHandler) Disconnected(s *socketio.Socket, reason string) {
	d.inner.Disconnected(s, reason)
	d.a.emitAll("socket_disconnected", d.nsp, s.ID(), reason, jsTime(time.Now()))
}

// devServerEvents keeps the inner handler's server-side emits.
type devServerEvents struct{ devHandler }

func (d *devServerEvents) ServerEvent(ns *socketio.Namespace, name string, args, atts [][]byte, ack func([]byte, [][]byte)) bool {
	return d.inner.(socketio.ServerEventHandler).ServerEvent(ns, name, args, atts, ack)
}

// devIndex reports each room a socket joins or leaves (the Node adapter's
// join-room and leave-room).
type devIndex struct {
	*rooms.Memory
	a   *Admin
	nsp string
}

func (x *devIndex) Join(id string, rs ...string) error {
	before := x.Memory.Rooms(id)
	if err := x.Memory.Join(id, rs...); err != nil {
		return err
	}
	x.report("room_joined", id, rs, before, false)
	return nil
}

func (x *devIndex) JoinSocketRooms(id string, rs ...string) error {
	before := x.Memory.Rooms(id)
	if err := x.Memory.JoinSocketRooms(id, rs...); err != nil {
		return err
	}
	x.report("room_joined", id, rs, before, false)
	return nil
}

func (x *devIndex) Leave(id string, rs ...string) {
	before := x.Memory.Rooms(id)
	x.Memory.Leave(id, rs...)
	x.report("room_left", id, rs, before, true)
}

// report sends one event per room that changed: joined and not in before,
// or left and in before.
func (x *devIndex) report(event, id string, rs, before []string, wasIn bool) {
	now := jsTime(time.Now())
	for _, r := range rs {
		in := false
		for _, b := range before {
			if b == r {
				in = true
				break
			}
		}
		if in == wasIn && r != id {
			x.a.emitAll(event, x.nsp, r, id, now)
		}
	}
}

// local describes one of this instance's sockets.
func (a *Admin) local(s *socketio.Socket) socketJSON {
	cid := s.ClientID()
	if len(cid) > 12 {
		cid = cid[:12] // as the Node package shows it
	}
	data := s.Data()
	if len(data) == 0 || string(data) == "null" {
		data = []byte("{}")
	}
	return socketJSON{ID: s.ID(), ClientID: cid, Transport: s.Transport(), Nsp: s.Namespace().Name(),
		Data: data, Handshake: stripAuth(s.HandshakeJSON()), Rooms: s.Rooms()}
}

// remote describes a socket of another instance from its fetchSockets
// answer. A Node server with the admin package keeps the client id and
// transport in data._admin; a socketfleet instance does not, so the socket
// stands for its own client there.
func remote(nsp string, r sdk.RemoteSocket) socketJSON {
	out := socketJSON{ID: r.ID, ClientID: r.ID, Transport: "", Nsp: nsp, Data: json.RawMessage("{}"),
		Handshake: stripAuth(r.Handshake), Rooms: r.Rooms}
	var data map[string]json.RawMessage
	if json.Unmarshal(r.Data, &data) == nil && data != nil {
		if raw, ok := data["_admin"]; ok {
			var meta struct {
				ClientID  string `json:"clientId"`
				Transport string `json:"transport"`
			}
			if json.Unmarshal(raw, &meta) == nil {
				out.ClientID, out.Transport = meta.ClientID, meta.Transport
			}
			delete(data, "_admin")
		}
		out.Data, _ = json.Marshal(data)
	}
	if out.Transport == "" {
		var hs struct {
			Query struct {
				Transport string `json:"transport"`
			} `json:"query"`
		}
		_ = json.Unmarshal(r.Handshake, &hs)
		out.Transport = hs.Query.Transport // the first transport: the best we know
	}
	return out
}

// stripAuth drops the handshake's auth (the Node package leaves it out:
// it may hold credentials).
func stripAuth(hs []byte) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(hs, &m) != nil {
		return json.RawMessage("{}")
	}
	delete(m, "auth")
	out, _ := json.Marshal(m)
	return out
}

// sendAllSockets sends one admin socket every socket of the cluster, in
// every namespace.
func (a *Admin) sendAllSockets(s *socketio.Socket) {
	ctx, cancel := context.WithTimeout(context.Background(), actionTimeout)
	defer cancel()
	all := []socketJSON{}
	for _, ns := range a.srv.Namespaces() {
		mine := map[string]*socketio.Socket{}
		for _, ls := range ns.LocalSockets(rooms.Options{}) {
			mine[ls.ID()] = ls
		}
		socks, truncated, _, err := ns.FetchSockets(ctx, rooms.Options{}, maxAllSockets)
		if err != nil {
			a.log.WithError(err).WithField("namespace", ns.Name()).Warn("admin: sockets of the other instances unknown")
		}
		if truncated {
			a.log.WithField("namespace", ns.Name()).Infof("admin: all_sockets lists the first %d sockets only", maxAllSockets)
		}
		for _, r := range socks {
			if ls := mine[r.ID]; ls != nil {
				all = append(all, a.local(ls))
				continue
			}
			all = append(all, remote(ns.Name(), r))
		}
	}
	b, err := json.Marshal(all)
	if err != nil {
		return
	}
	s.Emit("all_sockets", [][]byte{b}, nil)
}
