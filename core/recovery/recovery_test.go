package recovery

import (
	"fmt"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/core/engineio"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/sdk"
)

func frame(s string) []*engineio.Message {
	buf := append(make([]byte, engineio.Headroom), s...)
	return []*engineio.Message{engineio.NewFramed(buf, false)}
}

func off(s string) Offset {
	o, ok := ParseOffset(s)
	if !ok {
		panic(s)
	}
	return o
}

func TestOffsets(t *testing.T) {
	if !off("1-5").Less(off("1-6")) || !off("1-9").Less(off("2-0")) || off("2-0").Less(off("1-9")) {
		t.Fatal("order")
	}
	for _, bad := range []string{"", "x", "1-", "-1", "1-2-3", "1-x"} {
		if _, ok := ParseOffset(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	data := AppendOffset([]byte(`["e",1]`), "17-3")
	if string(data) != `["e",1,"17-3"]` {
		t.Fatalf("%s", data)
	}
	if o, ok := LastOffset(append([]byte("42"), data...)); !ok || o != off("17-3") {
		t.Fatalf("LastOffset %v %v", o, ok)
	}
	for _, f := range []string{`42["e","x"]`, `42["e",1]`, `42["a-b"]`, `42"1-2"]`} {
		if _, ok := LastOffset([]byte(f)); ok {
			t.Errorf("offset found in %s", f)
		}
	}
}

func TestJournalSinceMatchesRoomsAndKnowsWhatItLost(t *testing.T) {
	j := NewJournal(time.Minute, 4, 1<<20)
	add := func(rms []string, except []string) string {
		o, oo := j.Assign()
		if oo != off(o) {
			t.Fatalf("Assign: %q and %v", o, oo)
		}
		j.Append(rooms.Options{Rooms: rms, Except: except}, frame(`42["e","`+o+`"]`), off(o))
		return o
	}
	add(nil, nil)           // 0-1 everyone
	add([]string{"a"}, nil) // 0-2
	add([]string{"b"}, nil) // 0-3
	add(nil, []string{"a"}) // 0-4 everyone but a
	got, complete := j.Since([]string{"sid", "a"}, off("0-1"), false)
	if !complete || len(got) != 1 || got[0].Offset != off("0-2") {
		t.Fatalf("since 0-1 for a: %v %v", got, complete)
	}
	got, _ = j.Since([]string{"sid", "b"}, off("0-0"), false)
	if len(got) != 3 {
		t.Fatalf("since 0-0 for b: %d entries", len(got))
	}
	// A fifth entry evicts the first (MaxEntries 4): a client at 0-0 may
	// have missed it, one at 0-1 has everything.
	add(nil, nil)
	if _, complete := j.Since([]string{"sid"}, off("0-0"), false); complete {
		t.Fatal("complete after eviction")
	}
	if _, complete := j.Since([]string{"sid"}, off("0-1"), false); !complete {
		t.Fatal("incomplete though nothing after 0-1 was dropped")
	}
	if j.Evicted.Load() != 1 {
		t.Fatalf("evicted %d", j.Evicted.Load())
	}
	// An offset newer than anything appended: not recoverable, unless the
	// caller knows it can be (a fleet's store saw it first).
	if _, complete := j.Since(nil, off("0-9"), false); complete {
		t.Fatal("a future offset accepted")
	}
	if _, complete := j.Since(nil, off("0-9"), true); !complete {
		t.Fatal("future allowed but refused")
	}
	if n, _ := j.Stats(); n != 4 {
		t.Fatalf("holds %d", n)
	}
}

func TestJournalBoundsByBytesAndAge(t *testing.T) {
	j := NewJournal(50*time.Millisecond, 1000, 2000)
	for i := 0; i < 100; i++ {
		o, _ := j.Assign()
		j.Append(rooms.Options{}, frame(fmt.Sprintf(`42["e","%0100d","%s"]`, i, o)), off(o))
	}
	n, b := j.Stats()
	if b > 2000 || n == 0 || n >= 100 {
		t.Fatalf("holds %d entries, %d bytes (cap 2000)", n, b)
	}
	if j.Evicted.Load() != int64(100-n) {
		t.Fatalf("evicted %d, held %d", j.Evicted.Load(), n)
	}
	time.Sleep(80 * time.Millisecond)
	if _, complete := j.Since(nil, off("0-100"), false); !complete {
		t.Fatal("the newest offset is always complete")
	}
	if n, _ := j.Stats(); n != 0 {
		t.Fatalf("%d entries outlived MaxAge", n)
	}
	// Out-of-order appends are not kept.
	if j.Append(rooms.Options{}, frame(`42["e","0-50"]`), off("0-50")) {
		t.Fatal("an out-of-order entry was accepted")
	}
	if n, _ := j.Stats(); n != 0 {
		t.Fatal("an out-of-order entry was kept")
	}
}

func TestMemorySessions(t *testing.T) {
	j := NewJournal(time.Minute, 100, 1<<20)
	m := NewMemory(100 * time.Millisecond)
	sess := sdk.Session{Namespace: "/", ID: "s1", PID: "p1", Rooms: []string{"s1", "r"}, Data: []byte(`{"a":1}`)}
	m.Save(sdk.SessionChange{State: sdk.SessionLive, Session: sess})
	if m.Len() != 0 {
		t.Fatal("a live session kept in memory")
	}
	m.Save(sdk.SessionChange{State: sdk.SessionSaved, Session: sess})
	if _, err := m.Restore(j, "/other", "p1", ""); err != sdk.ErrNoSession {
		t.Fatalf("another namespace: %v", err)
	}
	rs, err := m.Restore(j, "/", "p1", "")
	if err != nil || rs.ID != "s1" || rs.Offset != "0-0" {
		t.Fatalf("restore: %+v %v", rs, err)
	}
	if _, err := m.Restore(j, "/", "p1", ""); err != sdk.ErrNoSession {
		t.Fatal("restored twice")
	}
	m.Save(sdk.SessionChange{State: sdk.SessionSaved, Session: sess})
	m.Save(sdk.SessionChange{State: sdk.SessionEnded, Session: sess})
	if m.Len() != 0 {
		t.Fatal("ended session kept")
	}
	m.Save(sdk.SessionChange{State: sdk.SessionSaved, Session: sess})
	time.Sleep(150 * time.Millisecond)
	if _, err := m.Restore(j, "/", "p1", ""); err != sdk.ErrNoSession {
		t.Fatal("expired session restored")
	}
	m.MaxSessions = 1
	m.Save(sdk.SessionChange{State: sdk.SessionSaved, Session: sess})
	sess.PID = "p2"
	m.Save(sdk.SessionChange{State: sdk.SessionSaved, Session: sess})
	if m.Len() != 1 || m.Refused.Load() != 1 {
		t.Fatalf("cap: %d held, %d refused", m.Len(), m.Refused.Load())
	}
}
