package rooms

import (
	"fmt"
	"slices"
	"testing"

	"github.com/socketfleet/socketfleet/core/engineio"
	"github.com/socketfleet/socketfleet/core/protocol/eiowire"
)

type member struct {
	id  string
	got int
}

func (m *member) ID() string                                   { return m.id }
func (m *member) Deliver([]*engineio.Message, *engineio.Batch) { m.got++ }
func (m *member) Prefetch(int)                                 {}

func setup() (*Memory, map[string]*member) {
	a := NewMemory()
	ms := map[string]*member{}
	for _, id := range []string{"s1", "s2", "s3", "s4"} {
		ms[id] = &member{id: id}
		a.Add(ms[id])
	}
	a.Join("s1", "red", "blue")
	a.Join("s2", "red")
	a.Join("s3", "blue")
	return a, ms
}

func delivered(ms map[string]*member) []string {
	var out []string
	for id, m := range ms {
		for i := 0; i < m.got; i++ {
			out = append(out, id)
		}
		m.got = 0
	}
	slices.Sort(out)
	return out
}

func TestBroadcastSelection(t *testing.T) {
	a, ms := setup()
	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"everyone", Options{}, []string{"s1", "s2", "s3", "s4"}},
		{"one room", Options{Rooms: []string{"red"}}, []string{"s1", "s2"}},
		{"two rooms, each once", Options{Rooms: []string{"red", "blue"}}, []string{"s1", "s2", "s3"}},
		{"socket id room", Options{Rooms: []string{"s4"}}, []string{"s4"}},
		{"except a socket", Options{Rooms: []string{"red"}, Except: []string{"s1"}}, []string{"s2"}},
		{"except a room", Options{Except: []string{"blue"}}, []string{"s2", "s4"}},
		{"unknown room", Options{Rooms: []string{"green"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := a.Broadcast(nil, tc.opts, nil)
			got := delivered(ms)
			if !slices.Equal(got, tc.want) || n != len(tc.want) {
				t.Fatalf("got %v (n=%d), want %v", got, n, tc.want)
			}
		})
	}
}

func TestMembership(t *testing.T) {
	a, _ := setup()
	if got := a.Rooms("s1"); !slices.Equal(got, []string{"s1", "red", "blue"}) {
		t.Fatalf("rooms %v", got)
	}
	a.Join("s1", "red", "s1") // already in red; own id is implicit
	if got := a.Rooms("s1"); len(got) != 3 {
		t.Fatalf("rooms after duplicate join %v", got)
	}
	a.Leave("s1", "red")
	a.Leave("s2", "red")
	rooms := a.AllRooms()
	slices.Sort(rooms)
	if !slices.Equal(rooms, []string{"blue"}) {
		t.Fatalf("empty room not dropped: %v", rooms)
	}
	a.Remove("s3")
	a.Remove("s1")
	if got := a.AllRooms(); len(got) != 0 {
		t.Fatalf("rooms after removing members: %v", got)
	}
	socks := a.Sockets(nil)
	slices.Sort(socks)
	if !slices.Equal(socks, []string{"s2", "s4"}) {
		t.Fatalf("sockets %v", socks)
	}
	if a.Rooms("s3") != nil {
		t.Fatal("removed socket still has rooms")
	}
}

func TestSelectMatchesBroadcast(t *testing.T) {
	a, _ := setup()
	for _, opts := range []Options{
		{},
		{Rooms: []string{"red"}},
		{Rooms: []string{"red", "blue"}},
		{Rooms: []string{"s4"}},
		{Rooms: []string{"red"}, Except: []string{"s1"}},
		{Except: []string{"blue"}},
		{Rooms: []string{"green"}},
	} {
		var got []string
		for _, m := range a.Select(opts) {
			got = append(got, m.ID())
		}
		slices.Sort(got)
		want := selectViaBroadcast(opts)
		if !slices.Equal(got, want) {
			t.Errorf("%+v: Select %v, Broadcast reached %v", opts, got, want)
		}
	}
}

func selectViaBroadcast(opts Options) []string {
	a, ms := setup()
	a.Broadcast(nil, opts, nil)
	return delivered(ms)
}

func TestRoomWatcherFiresOnCreateAndDeleteOnly(t *testing.T) {
	a := NewMemory()
	type change struct {
		room    string
		created bool
	}
	var got []change
	a.WatchRooms(func(room string, created bool) { got = append(got, change{room, created}) })
	for _, id := range []string{"s1", "s2"} {
		a.Add(&member{id: id})
	}
	a.Join("s1", "red", "s1") // own id: never reported
	a.Join("s2", "red")       // red exists: nothing
	a.Join("s1", "red")       // already a member: nothing
	a.Leave("s1", "red")      // s2 still there: nothing
	a.Join("s2", "blue")
	a.Leave("s2", "red") // last member: deleted
	a.Leave("s2", "gone")
	a.Remove("s2") // blue loses its last member
	want := []change{{"red", true}, {"blue", true}, {"red", false}, {"blue", false}}
	if !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
}

// orderMember records what it was given, in order, and the prefetch
// stages asked of it before its first delivery.
type orderMember struct {
	id     string
	got    []*engineio.Message
	stages []int
}

func (m *orderMember) ID() string { return m.id }

func (m *orderMember) Prefetch(stage int) {
	if len(m.got) == 0 {
		m.stages = append(m.stages, stage)
	}
}

func (m *orderMember) Deliver(msgs []*engineio.Message, _ *engineio.Batch) {
	m.got = append(m.got, msgs...)
}

// A large broadcast reaches each member once, and successive broadcasts
// arrive in order everywhere.
func TestLargeBroadcastInOrder(t *testing.T) {
	a := NewMemory()
	var in, out []*orderMember
	for i := 0; i < 3000; i++ {
		m := &orderMember{id: fmt.Sprintf("in%d", i)}
		a.Add(m)
		a.Join(m.id, "big")
		in = append(in, m)
	}
	for i := 0; i < 100; i++ {
		m := &orderMember{id: fmt.Sprintf("out%d", i)}
		a.Add(m)
		out = append(out, m)
	}
	var sent []*engineio.Message
	for i := 0; i < 20; i++ {
		msg := engineio.NewText(eiowire.Message, []byte(fmt.Sprint(i)))
		sent = append(sent, msg)
		if n := a.Broadcast([]*engineio.Message{msg}, Options{Rooms: []string{"big"}}, nil); n != len(in) {
			t.Fatalf("broadcast %d reached %d, want %d", i, n, len(in))
		}
	}
	for _, m := range in {
		if !slices.Equal(m.got, sent) {
			t.Fatalf("%s got %d messages (in order: %v), want the %d sent", m.id, len(m.got), len(m.got) == len(sent), len(sent))
		}
	}
	for _, m := range out {
		if len(m.got) != 0 {
			t.Fatalf("%s outside the room got %d", m.id, len(m.got))
		}
	}
	// Before its first delivery every recipient was prefetched stage by
	// stage, in order, up to the last; only the first few of the walk,
	// with nobody before them, miss the early stages (the first all).
	partial := 0
	for _, m := range in {
		st := m.stages
		if len(st) == 0 { // the first of the walk
			partial++
			continue
		}
		if st[len(st)-1] != prefetchStages-1 {
			t.Fatalf("%s prefetched %v before its delivery, want stages ending with %d", m.id, st, prefetchStages-1)
		}
		for i := 1; i < len(st); i++ {
			if st[i] != st[i-1]+1 {
				t.Fatalf("%s prefetched %v, want consecutive stages", m.id, st)
			}
		}
		if st[0] != 0 {
			partial++
		}
	}
	if partial > prefetchStages {
		t.Errorf("%d recipients missed early prefetch stages, want at most %d", partial, prefetchStages)
	}
}

// TestJoinLimits: a join is all or nothing; past MaxRooms, or naming
// another socket's id, it is refused and changes nothing.
func TestJoinLimits(t *testing.T) {
	a := NewMemory()
	a.MaxRooms = 3
	x, y := &member{id: "x"}, &member{id: "y"}
	a.Add(x)
	a.Add(y)
	if err := a.Join("x", "r1", "r2", "r1", "x"); err != nil { // duplicates and its own id are free
		t.Fatal(err)
	}
	if err := a.Join("x", "r3", "r4"); err != ErrTooManyRooms {
		t.Fatalf("join past the limit: %v", err)
	}
	if err := a.Join("x", "r3", "y"); err != ErrSocketRoom {
		t.Fatalf("join of another socket's id: %v", err)
	}
	if got := a.Rooms("x"); len(got) != 3 || got[1] != "r1" || got[2] != "r2" {
		t.Fatalf("rooms after refused joins: %v", got)
	}
	if err := a.Join("x", "r2", "r3"); err != nil {
		t.Fatal(err)
	}
	long := make([]string, 100)
	for i := range long {
		long[i] = "same"
	}
	a.Leave("x", "r3")
	if err := a.Join("x", long...); err != nil { // one room, named 100 times
		t.Fatalf("a join of 100 names: %v", err)
	}
}

// TestJoinSocketRooms: a join that may name other sockets' ids (a rule
// with allow_socket_ids) joins them; a broadcast to that id then reaches
// the socket and its joiner, once each; the limits still hold.
func TestJoinSocketRooms(t *testing.T) {
	a := NewMemory()
	a.MaxRooms = 2
	x, y, z := &member{id: "x"}, &member{id: "y"}, &member{id: "z"}
	a.Add(x)
	a.Add(y)
	a.Add(z)
	if err := a.JoinSocketRooms("x", "y", "x"); err != nil {
		t.Fatal(err)
	}
	if n := a.Broadcast(nil, Options{Rooms: []string{"y"}}, nil); n != 2 || x.got != 1 || y.got != 1 || z.got != 0 {
		t.Fatalf("broadcast to y: %d recipients, x %d, y %d, z %d", n, x.got, y.got, z.got)
	}
	if n := a.Broadcast(nil, Options{Rooms: []string{"y", "x"}}, nil); n != 2 {
		t.Fatalf("broadcast to y and x: %d recipients", n)
	}
	if n := a.Broadcast(nil, Options{Rooms: []string{"y"}, Except: []string{"y"}}, nil); n != 0 {
		t.Fatalf("broadcast to y except y: %d recipients (y's room holds x)", n)
	}
	if got := a.Sockets([]string{"y"}); len(got) != 2 {
		t.Fatalf("sockets in y: %v", got)
	}
	if got := a.Select(Options{Rooms: []string{"y"}}); len(got) != 2 {
		t.Fatalf("select y: %v", got)
	}
	if err := a.JoinSocketRooms("x", "r1", "r2"); err != ErrTooManyRooms {
		t.Fatalf("past the limit: %v", err)
	}
	if err := a.Join("z", "y"); err != ErrSocketRoom {
		t.Fatalf("a plain join of y: %v", err)
	}
	a.Leave("x", "y")
	x.got, y.got = 0, 0
	if n := a.Broadcast(nil, Options{Rooms: []string{"y"}}, nil); n != 1 || x.got != 0 || y.got != 1 {
		t.Fatalf("after x left y: %d recipients, x %d", n, x.got)
	}
}

// A big room's walk is kept between broadcasts, and a join, a leave, a
// removal or a socket of the room's id arriving changes who gets the next.
func TestStoredWalkFollowsMembership(t *testing.T) {
	a := NewMemory()
	ms := map[string]*member{}
	for i := 0; i < 2*sortMin; i++ {
		id := fmt.Sprint("s", i)
		ms[id] = &member{id: id}
		a.Add(ms[id])
		a.Join(id, "big")
	}
	msg := []*engineio.Message{engineio.NewText(eiowire.Message, []byte("x"))}
	send := func() int { return a.Broadcast(msg, Options{Rooms: []string{"big"}}, nil) }
	if n := send(); n != 2*sortMin {
		t.Fatalf("first broadcast reached %d, want %d", n, 2*sortMin)
	}
	a.Leave("s0", "big")
	a.Remove("s1")
	late := &member{id: "late"}
	a.Add(late)
	a.Join("late", "big")
	owner := &member{id: "big"} // a socket whose id is the room's name
	a.Add(owner)
	if n := send(); n != 2*sortMin {
		t.Fatalf("second broadcast reached %d, want %d (-2 gone, +1 joined, +1 owner)", n, 2*sortMin)
	}
	if ms["s0"].got != 1 || ms["s1"].got != 1 || late.got != 1 || owner.got != 1 || ms["s2"].got != 2 {
		t.Fatalf("got s0 %d, s1 %d, late %d, owner %d, s2 %d; want 1, 1, 1, 1, 2",
			ms["s0"].got, ms["s1"].got, late.got, owner.got, ms["s2"].got)
	}
	if n := send(); n != 2*sortMin || late.got != 2 || ms["s0"].got != 1 {
		t.Fatalf("third broadcast reached %d (late %d, s0 %d)", n, late.got, ms["s0"].got)
	}
}

// A broadcast to a small room (an emit to one socket's own-id room, a
// room of a few) allocates nothing: its recipient list is pooled, and only
// big rooms' walks are kept.
func TestSmallRoomBroadcastAllocatesNothing(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts mean nothing under the race detector")
	}
	a, _ := setup()
	b := new(engineio.Batch)
	for _, r := range []string{"red", "s1"} {
		if n := testing.AllocsPerRun(200, func() { a.Broadcast(nil, Options{Rooms: []string{r}}, b) }); n != 0 {
			t.Errorf("broadcast to %q: %v allocations", r, n)
		}
	}
}
