package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// The duplicate table: per stream and publisher, a sequence seen is a
// duplicate (out of order within the window is not), older than the window
// too; entries without mid never are; checks count only once committed;
// idle publishers are forgotten, and the least recently seen beyond the cap.
func TestStreamsDedupeTable(t *testing.T) {
	for s, want := range map[string]bool{"ab12:1": true, "a:b:7": true, "x:0": false, "x:": false, ":5": false, "nocolon": false, "x:-1": false, "x:1a": false} {
		if _, _, ok := parseMID(s); ok != want {
			t.Errorf("parseMID(%q) ok = %v", s, ok)
		}
	}
	if pub, seq, _ := parseMID("a:b:7"); pub != "a:b" || seq != 7 {
		t.Errorf("parseMID(a:b:7) = %q %d", pub, seq)
	}
	now := time.Unix(1e9, 0)
	d := newDedupe()
	tx := d.begin("s")
	check := func(tx *dedupeTx, mid any, want bool) {
		t.Helper()
		if got := tx.dup(mid, now); got != want {
			t.Errorf("dup(%v) = %v, want %v", mid, got, want)
		}
	}
	for i := 1; i <= 10; i++ {
		check(tx, fmt.Sprintf("p:%d", i), false)
	}
	check(tx, "p:10", true) // a retry
	check(tx, "p:3", true)
	check(tx, "p:20", false)
	check(tx, "p:15", false) // out of order (a concurrent request): not a copy
	check(tx, "p:15", true)
	check(tx, "q:3", false) // another publisher
	check(tx, nil, false)   // Node's entries: no mid
	check(tx, nil, false)
	check(tx, "garbage", false)
	check(tx, "garbage", false)
	check(d.begin("other"), "p:20", false) // another stream
	check(tx, fmt.Sprintf("p:%d", 20+dedupeWindow), false)
	check(tx, "p:19", true)                                // below the window
	check(tx, fmt.Sprintf("p:%d", 19+dedupeWindow), false) // in it, not seen
	check(tx, fmt.Sprintf("p:%d", 10*dedupeWindow), false)
	check(tx, fmt.Sprintf("p:%d", 10*dedupeWindow-1), false) // the jump cleared the window

	// Nothing is remembered until committed: a refused batch read again.
	if d.size() != 0 {
		t.Fatalf("%d remembered before commit", d.size())
	}
	check(d.begin("s"), "p:5", false)
	tx.commit(now)
	check(d.begin("s"), "p:5", true)
	check(d.begin("s"), "q:3", true)
	if d.size() != 2 {
		t.Fatalf("%d remembered, want 2 (p and q in s)", d.size())
	}

	// Idle publishers are forgotten.
	later := now.Add(dedupeIdle + time.Minute)
	tx2 := d.begin("s")
	if tx2.dup("r:1", later) {
		t.Fatal("r:1")
	}
	tx2.commit(later)
	if d.size() != 1 {
		t.Fatalf("%d remembered after p and q idled, want 1", d.size())
	}
	if d.begin("s").dup("p:5", later) {
		t.Fatal("p:5 remembered after idling")
	}

	// The cap: the least recently seen go first.
	d = newDedupe()
	for i := 0; i < dedupeMaxPubs+5; i++ {
		tx := d.begin("s")
		tx.dup(fmt.Sprintf("pub%d:1", i), now.Add(time.Duration(i)*time.Millisecond))
		tx.commit(now.Add(time.Duration(i) * time.Millisecond))
	}
	if d.size() != dedupeMaxPubs {
		t.Fatalf("%d remembered, cap %d", d.size(), dedupeMaxPubs)
	}
	if d.begin("s").dup("pub0:1", now) || !d.begin("s").dup(fmt.Sprintf("pub%d:1", dedupeMaxPubs+4), now) {
		t.Fatal("the cap did not forget the oldest")
	}
}

// The case that made duplicates: redis-server stopped longer than the
// publisher's read timeout while it publishes numbered broadcasts. The
// pipeline that timed out was buffered by the kernel and Redis runs it when
// it resumes; the queue sent the batch again, so the stream holds copies
// (checked). A reader delivers each number exactly once, the copies are
// counted, and RestoreSession replays none twice, even from an offset
// between an original and its copy.
func TestStreamsRetryDuplicates(t *testing.T) {
	r := testkit.StartRedis(t)
	t.Cleanup(func() { _ = r.Proc.Signal(syscall.SIGCONT) })
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	a := newStreamsInstance(t, r.URL()+"?read_timeout=300ms&write_timeout=300ms", "")
	b := newStreamsInstance(t, r.URL(), `,"block_time":"500ms"`)
	if err := b.raw.EnableRecovery(ctx, sdk.RecoveryConfig{MaxDisconnection: time.Minute}); err != nil {
		t.Fatal(err)
	}
	cb := subscribe(t, b.a)
	await(t, a.a, cb, "ready")
	sess := sdk.Session{Namespace: "/", ID: "sid-d", PID: "pid-d", Rooms: []string{"sid-d"}, Data: []byte(`null`),
		Offset: cb.event("ready")[0].Offset}
	if err := b.raw.SaveSessions(ctx, []sdk.SessionChange{{State: sdk.SessionSaved, Session: sess}}); err != nil {
		t.Fatal(err)
	}

	// Publish 10 numbered broadcasts every 5 ms throughout.
	var mu sync.Mutex
	next := 0
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			mu.Lock()
			err := a.a.Publish(ctx, numbered("n", next, 10))
			next += 10
			mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := r.Proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // 5 read timeouts
	if err := r.Proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	close(stop)
	<-stopped
	total := next

	eventually(t, "every number delivered", func() bool { return len(cb.numbers("n")) == total })
	time.Sleep(700 * time.Millisecond) // let any late copy arrive
	lost, duplicated := 0, 0
	got := cb.numbers("n")
	for n := 0; n < total; n++ {
		switch c := got[n]; {
		case c == 0:
			lost++
		case c > 1:
			duplicated++
		}
	}
	t.Logf("%d broadcasts: lost %d, duplicated %d", total, lost, duplicated)
	if lost != 0 || duplicated != 0 || len(got) != total {
		t.Fatalf("lost %d, duplicated %d, %d distinct numbers for %d published", lost, duplicated, len(got), total)
	}

	// The stream itself has copies: the dedupe ran.
	type entry struct {
		id, mid string
		n       int
	}
	var entries []entry
	copies := 0
	firstAt := map[string]int{} // mid → index of its first copy
	dupMid := ""
	for _, e := range rawEntries(t, rdb, "socket.io") {
		en := entry{id: e[0], n: -1}
		for i := 1; i+1 < len(e); i += 2 {
			switch e[i] {
			case "mid":
				en.mid = e[i+1]
			case "data":
				var d struct {
					Packet struct{ Data []json.RawMessage }
				}
				if json.Unmarshal([]byte(e[i+1]), &d) == nil && len(d.Packet.Data) == 2 && string(d.Packet.Data[0]) == `"n"` {
					_ = json.Unmarshal(d.Packet.Data[1], &en.n)
				}
			}
		}
		if en.mid == "" {
			t.Fatalf("entry %q without mid", e)
		}
		if _, ok := firstAt[en.mid]; ok {
			copies++
			if dupMid == "" && en.n >= 0 {
				dupMid = en.mid
			}
		} else {
			firstAt[en.mid] = len(entries)
		}
		entries = append(entries, en)
	}
	t.Logf("%d entries in the stream, %d of them copies", len(entries), copies)
	if copies == 0 || dupMid == "" {
		t.Fatal("no copy in the stream: the timeout-and-retry case did not happen")
	}
	if n := metric(t, b.st, "redis_stream_duplicates_dropped_total", "reader=xread"); n != float64(copies) {
		t.Fatalf("redis_stream_duplicates_dropped_total{reader=xread} = %v, want %d", n, copies)
	}

	// RestoreSession: everything after the session's offset, once each.
	restored := func(pid, offset string) map[int]int {
		t.Helper()
		rs, err := b.raw.RestoreSession(ctx, "/", pid, offset)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int]int{}
		for _, m := range rs.Missed {
			var arr []json.RawMessage
			var n int
			if json.Unmarshal(m.Data, &arr) == nil && len(arr) == 2 && json.Unmarshal(arr[1], &n) == nil {
				out[n]++
			}
		}
		return out
	}
	missed := restored("pid-d", "")
	for n := 0; n < total; n++ {
		if missed[n] != 1 {
			t.Fatalf("restore: %d missed %d times", n, missed[n])
		}
	}
	// From the offset of an original whose copy comes later: the copy is
	// not replayed (the entries before the offset are looked at), and
	// every number first written after the offset is.
	from := firstAt[dupMid]
	sess.PID = "pid-d2"
	if err := b.raw.SaveSessions(ctx, []sdk.SessionChange{{State: sdk.SessionSaved, Session: sess}}); err != nil {
		t.Fatal(err)
	}
	missed = restored("pid-d2", entries[from].id)
	want := map[int]int{}
	for i, e := range entries {
		if i > from && firstAt[e.mid] == i && e.n >= 0 {
			want[e.n] = 1
		}
	}
	for n, c := range missed {
		if c != 1 || want[n] != 1 {
			t.Fatalf("restore from %s: %d missed %d times (expected: %v)", entries[from].id, n, c, want[n] == 1)
		}
	}
	if len(missed) != len(want) {
		t.Fatalf("restore from %s: %d numbers, want %d", entries[from].id, len(missed), len(want))
	}
	if n := metric(t, b.st, "redis_stream_duplicates_dropped_total", "reader=restore"); n < 1 {
		t.Fatalf("redis_stream_duplicates_dropped_total{reader=restore} = %v", n)
	}
	t.Logf("restore from the original of %s: %d replayed, its copy not", dupMid, len(missed))
}
