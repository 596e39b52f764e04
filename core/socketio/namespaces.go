package socketio

import "github.com/socketfleet/socketfleet/core/rooms"

// nsTable is one version of a server's namespaces. It is never modified
// once published: a change builds a new table (namespaces change only at
// start and on a config reload, while every packet looks one up).
type nsTable struct {
	byName map[string]*Namespace
	order  []*Namespace // in declaration order
}

func (t *nsTable) add(n *Namespace) {
	if _, dup := t.byName[n.name]; dup {
		t.remove(n.name)
	}
	t.byName[n.name] = n
	t.order = append(t.order, n)
}

func (t *nsTable) remove(name string) {
	delete(t.byName, name)
	for i, n := range t.order {
		if n.name == name {
			t.order = append(t.order[:i:i], t.order[i+1:]...)
			return
		}
	}
}

// replaceNamespaces publishes a modified copy of the table.
func (srv *Server) replaceNamespaces(change func(t *nsTable)) {
	srv.nspsMu.Lock()
	defer srv.nspsMu.Unlock()
	old := srv.nsps.Load()
	t := &nsTable{byName: make(map[string]*Namespace, len(old.byName)+1), order: append([]*Namespace(nil), old.order...)}
	for k, v := range old.byName {
		t.byName[k] = v
	}
	change(t)
	srv.nsps.Store(t)
}

// RemoveNamespace withdraws a namespace while the server serves (a config
// reload): new CONNECTs to it get "Invalid namespace", and its sockets on
// this instance are disconnected (the client sees "io server
// disconnect"; its other namespaces and its connection stay). It returns
// how many sockets were disconnected.
func (srv *Server) RemoveNamespace(name string) int {
	n := srv.Namespace(name)
	if n == nil {
		return 0
	}
	srv.replaceNamespaces(func(t *nsTable) { t.remove(name) })
	// A CONNECT that found the namespace before it was withdrawn checks
	// removed after joining the index: the sweep or that check sees it.
	n.removed.Store(true)
	socks := n.LocalSockets(rooms.Options{})
	for _, s := range socks {
		s.Disconnect(false)
	}
	return len(socks)
}
