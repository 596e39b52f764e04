// Package rooms is the room index of one namespace: which local socket is in
// which room, and delivery of a broadcast to the local sockets that match.
// Traffic to and from other instances is not its business: that is the
// cluster adapter plugin's, reached through core/socketio's Cluster, which
// follows the rooms this index creates and empties (RoomWatcher).
package rooms

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"unsafe"

	"github.com/socketfleet/socketfleet/core/engineio"
)

// Member is a local socket as the index sees it.
type Member interface {
	ID() string
	// Deliver queues already encoded messages (a packet and its binary
	// attachments) for the socket's client, to be written at b's Flush.
	Deliver(msgs []*engineio.Message, b *engineio.Batch)
	// Prefetch starts loading, without waiting, what Deliver will read:
	// stage 0 the member itself, each next stage what the lines loaded by
	// the earlier ones point to, up to prefetchStages-1 (a stage reads only
	// lines an earlier one loaded). A broadcast calls it for the members a
	// few places ahead of the one it delivers to (Memory.Broadcast).
	Prefetch(stage int)
}

// Direct is a Member whose deliveries need nothing of it but its session:
// DirectSession returns that session (nil: deliver through the member,
// e.g. while something may hold its traffic back). A broadcast then
// writes to the session itself and never reads the member: two cache
// lines less per recipient (bench/README.md, "The big-room path").
type Direct interface {
	DirectSession() *engineio.Session
}

// Options selects the recipients of a broadcast. Rooms empty means every
// socket of the namespace; a socket in any Except room (socket ids are rooms
// too) is skipped.
type Options struct {
	Rooms  []string
	Except []string
}

// Index is what a namespace needs from its room registry: the in-memory
// Memory here, or one that also follows the rooms for a cluster plugin.
type Index interface {
	Add(m Member)
	// Join adds a socket to rooms, all or none: it refuses (ErrTooManyRooms,
	// ErrSocketRoom) rather than join part of them.
	Join(id string, rooms ...string) error
	// JoinSocketRooms is Join that may also join other sockets' id rooms
	// (a rule that names them explicitly: allow_socket_ids); the joiner
	// then receives what is sent to that socket, and the socket still
	// does.
	JoinSocketRooms(id string, rooms ...string) error
	Leave(id string, rooms ...string)
	Remove(id string)
	// Rooms returns the rooms a socket is in, its own id first.
	Rooms(id string) []string
	// Broadcast delivers msgs to the local sockets matching opts and returns
	// how many received them. With b nil they are written before it
	// returns; otherwise at b's Flush, with whatever else b holds.
	Broadcast(msgs []*engineio.Message, opts Options, b *engineio.Batch) int
	// Sockets returns the ids of the sockets in any of rooms (all when empty).
	Sockets(rooms []string) []string
	// Select returns the local sockets matching opts, each once: the same
	// selection as Broadcast.
	Select(opts Options) []Member
	// AllRooms returns every room that has a member (socket-id rooms excluded).
	AllRooms() []string
}

// RoomWatcher is implemented by indexes that report when a named room
// (not a socket id) gets its first member or loses its last one, so that a
// cluster adapter can follow the rooms this instance holds.
type RoomWatcher interface {
	// WatchRooms sets fn, called with created=true when room gets its first
	// member and false when its last member leaves. Set it before sockets
	// connect. fn runs under the index's lock, in order: it must not block
	// or call back into the index.
	WatchRooms(fn func(room string, created bool))
}

type entry struct {
	m     Member
	rooms []string // joined rooms, not counting the socket's own id
}

// Errors of Join.
var (
	ErrTooManyRooms = errors.New("too many rooms")
	ErrSocketRoom   = errors.New("room is another socket's id")
)

// DefaultMaxRooms is Memory's MaxRooms unless set.
const DefaultMaxRooms = 1000

// Memory is the in-memory room index. A socket's own-id room is implicit (the
// socket table answers for it), so a socket that joins nothing costs one map
// entry, not a room of its own.
type Memory struct {
	mu      sync.RWMutex
	sockets map[string]*entry
	rooms   map[string]map[string]*entry
	onRoom  func(room string, created bool) // nil = nobody watches
	targets sync.Pool                       // *[]target, Broadcast's recipient lists
	batches sync.Pool                       // *engineio.Batch
	// walks holds, per room broadcast to since its members last changed,
	// its recipients in walking order (never modified once stored): a
	// broadcast to a room that did not change walks no map and sorts
	// nothing. gen counts membership changes, so that a walk built under
	// the read lock is stored only if none happened meanwhile.
	walks map[string][]target
	gen   uint64
	// MaxRooms bounds the rooms one socket is in (its own id aside); a
	// room per join would otherwise let one client grow the index, and
	// the cluster adapter's subscriptions, without limit. Set before use;
	// SetMaxRooms while in use.
	MaxRooms int
}

// SetMaxRooms changes MaxRooms while the index is in use (a config
// reload): the next join is held to it; a socket already above it keeps
// its rooms.
func (a *Memory) SetMaxRooms(n int) {
	a.mu.Lock()
	a.MaxRooms = n
	a.mu.Unlock()
}

// NewMemory returns an empty room index.
func NewMemory() *Memory {
	return &Memory{sockets: make(map[string]*entry), rooms: make(map[string]map[string]*entry), walks: make(map[string][]target), MaxRooms: DefaultMaxRooms}
}

var (
	_ Index       = (*Memory)(nil)
	_ RoomWatcher = (*Memory)(nil)
)

// WatchRooms implements RoomWatcher. The callback costs nothing on joins
// and leaves that neither create nor empty a room.
func (a *Memory) WatchRooms(fn func(room string, created bool)) {
	a.mu.Lock()
	a.onRoom = fn
	a.mu.Unlock()
}

// Add registers a socket; it is in its own room from now on.
func (a *Memory) Add(m Member) {
	a.mu.Lock()
	a.sockets[m.ID()] = &entry{m: m}
	a.changedLocked(m.ID())
	a.mu.Unlock()
}

// Join adds a socket to rooms. Joining one's own id is a no-op; another
// local socket's id is refused (its room is its private channel: a
// joiner would receive what is sent to that socket alone).
func (a *Memory) Join(id string, rooms ...string) error { return a.join(id, false, rooms) }

// JoinSocketRooms implements Index: Join, other sockets' ids allowed.
func (a *Memory) JoinSocketRooms(id string, rooms ...string) error { return a.join(id, true, rooms) }

func (a *Memory) join(id string, socketRooms bool, rooms []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.sockets[id]
	if e == nil {
		return nil
	}
	// Lookups in the room sets, not scans of e.rooms: a join must cost
	// the same at a socket's thousandth room as at its first.
	var seen map[string]bool // long lists: duplicates by lookup, not scan
	if len(rooms) > 16 {
		seen = make(map[string]bool, 64)
	}
	fresh := 0
	for i, r := range rooms {
		if r == id || a.rooms[r][id] != nil {
			continue
		}
		if seen != nil {
			if seen[r] {
				continue
			}
			seen[r] = true
		} else if contains(rooms[:i], r) {
			continue
		}
		if !socketRooms && a.sockets[r] != nil {
			return ErrSocketRoom
		}
		if fresh++; a.MaxRooms > 0 && len(e.rooms)+fresh > a.MaxRooms {
			return ErrTooManyRooms
		}
	}
	for _, r := range rooms {
		if r == id || a.rooms[r][id] != nil {
			continue
		}
		e.rooms = append(e.rooms, r)
		a.changedLocked(r)
		set := a.rooms[r]
		if set == nil {
			set = make(map[string]*entry)
			a.rooms[r] = set
			if a.onRoom != nil {
				a.onRoom(r, true)
			}
		}
		set[id] = e
	}
	return nil
}

// Leave removes a socket from rooms.
func (a *Memory) Leave(id string, rooms ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.sockets[id]
	if e == nil {
		return
	}
	for _, r := range rooms {
		if i := index(e.rooms, r); i >= 0 {
			e.rooms = append(e.rooms[:i], e.rooms[i+1:]...)
			a.leaveLocked(id, r)
		}
	}
}

func (a *Memory) leaveLocked(id, room string) {
	a.changedLocked(room)
	set := a.rooms[room]
	delete(set, id)
	if len(set) == 0 {
		delete(a.rooms, room)
		if a.onRoom != nil {
			a.onRoom(room, false)
		}
	}
}

// Remove forgets a socket and all its rooms.
func (a *Memory) Remove(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.sockets[id]
	if e == nil {
		return
	}
	for _, r := range e.rooms {
		a.leaveLocked(id, r)
	}
	delete(a.sockets, id)
	a.changedLocked(id)
}

// Rooms returns the socket's rooms, its own id first; nil if unknown.
func (a *Memory) Rooms(id string) []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	e := a.sockets[id]
	if e == nil {
		return nil
	}
	out := make([]string, 0, 1+len(e.rooms))
	return append(append(out, id), e.rooms...)
}

// Broadcast delivers msgs to every matching local socket exactly once.
// The recipients are collected under the lock and written to after it:
// writing is a system call per socket, and joins must not wait for it.
func (a *Memory) Broadcast(msgs []*engineio.Message, opts Options, b *engineio.Batch) int {
	var to []target
	var tp *[]target // pooled: to is a list of this broadcast's own
	single := len(opts.Rooms) == 1 && len(opts.Except) == 0
	a.mu.RLock()
	if single {
		to = a.walks[opts.Rooms[0]]
	}
	gen := a.gen
	if to == nil {
		tp, _ = a.targets.Get().(*[]target)
		if tp == nil {
			tp = new([]target)
		}
		to = (*tp)[:0]
		a.eachSelectedLocked(opts, func(e *entry) { to = append(to, newTarget(e)) })
	}
	a.mu.RUnlock()
	if tp != nil {
		sortWalk(to)
		if single && len(to) >= sortMin {
			a.storeWalk(opts.Rooms[0], to, gen)
		}
	}
	// A broadcast of its own is written as it goes, one pass over the
	// recipients, unless splitting its writes over the cores pays
	// (engineio.SplitPays): holding every recipient for a Flush walks them
	// twice, and a big room no longer fits the caches between the walks.
	own := b == nil && engineio.SplitPays(len(to))
	if own {
		b, _ = a.batches.Get().(*engineio.Batch)
		if b == nil {
			b = new(engineio.Batch)
		}
	}
	// Each delivery is a system call whose kernel work evicts what the
	// next recipient needs from the caches; the prefetches run ahead in a
	// pipeline, one stage a delivery, so that its lines arrive during the
	// writes before it instead of one miss after another.
	for i := range to {
		e := &to[i]
		if e.s != nil {
			// Direct: one stage, the session's lines.
			if j := i + prefetchStages; j < len(to) && to[j].s != nil {
				to[j].s.Prefetch()
			}
			b.Send(e.s, msgs)
			continue
		}
		for st := range prefetchStages {
			if j := i + prefetchStages - st; j < len(to) {
				to[j].m.Prefetch(st)
			}
		}
		e.m.Deliver(msgs, b)
	}
	if own {
		b.Flush()
		a.batches.Put(b)
	}
	n := len(to)
	if tp != nil && cap(to) <= maxPooledTargets {
		clear(to)
		*tp = to[:0]
		a.targets.Put(tp)
	}
	return n
}

// storeWalk keeps a copy of a big room's walk for the next broadcasts to
// it (shared, read-only), unless its members changed since gen. Small
// rooms are collected each time: a stored walk per socket's own-id room
// would cost more memory than it saves.
func (a *Memory) storeWalk(room string, to []target, gen uint64) {
	walk := slices.Clone(to)
	a.mu.Lock()
	if a.gen == gen {
		a.walks[room] = walk
	}
	a.mu.Unlock()
}

// changedLocked drops the stored walk of a room whose members change.
// Called under the write lock.
func (a *Memory) changedLocked(room string) {
	a.gen++
	if len(a.walks) > 0 {
		delete(a.walks, room)
	}
}

// sortWalk puts recipients in the order of their entries' addresses, about
// the order the sockets connected in: a socket, its session and its
// connection were allocated about then, so neighbours in this order share
// memory pages and the walk misses the TLB about once a page rather than a
// few times a recipient, as in the map's random order (bench/README.md,
// "The big-room path").
func sortWalk(to []target) {
	if len(to) >= sortMin {
		slices.SortFunc(to, func(x, y target) int { return cmp.Compare(x.at, y.at) })
	}
}

// target is a recipient of a broadcast and where its entry lives; s is
// its session when the member is Direct (nil: through the member).
type target struct {
	m  Member
	s  *engineio.Session
	at uintptr
}

// newTarget makes e a broadcast's target.
func newTarget(e *entry) target {
	t := target{m: e.m, at: uintptr(unsafe.Pointer(e))}
	if d, ok := e.m.(Direct); ok {
		t.s = d.DirectSession()
	}
	return t
}

// prefetchStages is how many stages Member.Prefetch has, and so how many
// recipients ahead of the delivery a broadcast starts prefetching: stage
// st is prefetched for the recipient prefetchStages-st places ahead.
const prefetchStages = 3

// sortMin is the fewest recipients a broadcast puts in address order.
const sortMin = 64

// maxPooledTargets bounds the recipient lists kept for reuse (32 B each).
// Stored walks are not bounded by it: they hold one target per membership
// of a room broadcast to, as the room's own set does.
const maxPooledTargets = 1 << 16

// eachSelectedLocked visits every socket matching opts exactly once: in
// any of opts.Rooms (all when empty), in none of opts.Except.
func (a *Memory) eachSelectedLocked(opts Options, fn func(e *entry)) {
	visit := func(id string, e *entry) {
		if len(opts.Except) == 0 || !excepted(id, e, opts.Except) {
			fn(e)
		}
	}
	switch len(opts.Rooms) {
	case 0:
		for id, e := range a.sockets {
			visit(id, e)
		}
	case 1:
		a.eachInRoomLocked(opts.Rooms[0], visit)
	default:
		seen := make(map[string]struct{})
		for _, r := range opts.Rooms {
			a.eachInRoomLocked(r, func(id string, e *entry) {
				if _, dup := seen[id]; !dup {
					seen[id] = struct{}{}
					visit(id, e)
				}
			})
		}
	}
}

// eachInRoomLocked visits the members of a room, including the implicit
// own-id room of a socket: its owner, and whoever joined it through
// JoinSocketRooms (never the owner: Join skips one's own id).
func (a *Memory) eachInRoomLocked(room string, fn func(id string, e *entry)) {
	for id, e := range a.rooms[room] {
		fn(id, e)
	}
	if e := a.sockets[room]; e != nil {
		fn(room, e)
	}
}

func excepted(id string, e *entry, except []string) bool {
	for _, x := range except {
		if x == id || contains(e.rooms, x) {
			return true
		}
	}
	return false
}

// Sockets returns the ids of sockets in any of rooms (all sockets when empty).
func (a *Memory) Sockets(rooms []string) []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []string
	if len(rooms) == 0 {
		out = make([]string, 0, len(a.sockets))
		for id := range a.sockets {
			out = append(out, id)
		}
		return out
	}
	seen := make(map[string]struct{})
	for _, r := range rooms {
		a.eachInRoomLocked(r, func(id string, _ *entry) {
			if _, dup := seen[id]; !dup {
				seen[id] = struct{}{}
				out = append(out, id)
			}
		})
	}
	return out
}

// Select returns the sockets matching opts, each once.
func (a *Memory) Select(opts Options) []Member {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []Member
	if len(opts.Rooms) == 0 {
		out = make([]Member, 0, len(a.sockets))
	}
	a.eachSelectedLocked(opts, func(e *entry) { out = append(out, e.m) })
	return out
}

// AllRooms returns the named rooms that have members.
func (a *Memory) AllRooms() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]string, 0, len(a.rooms))
	for r := range a.rooms {
		out = append(out, r)
	}
	return out
}

func index(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func contains(list []string, s string) bool { return index(list, s) >= 0 }
