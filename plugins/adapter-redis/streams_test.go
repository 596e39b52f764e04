package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// newStreamsInstance is a plugin in streams mode on url; extra adds
// attributes to the block (`,"max_len":10`).
func newStreamsInstance(t *testing.T, url, extra string) *reqInstance {
	t.Helper()
	return newRequestInstance(t, fmt.Sprintf(`{"url":%q,"mode":"streams"%s}`, url, extra))
}

// rawEntries are a stream's entries as Redis returns them: id, then the
// fields in their order.
func rawEntries(t *testing.T, rdb *redis.Client, stream string) [][]string {
	t.Helper()
	v, err := rdb.Do(context.Background(), "XRANGE", stream, "-", "+").Slice()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, e := range v {
		ev := e.([]any)
		row := []string{ev[0].(string)}
		for _, f := range ev[1].([]any) {
			row = append(row, f.(string))
		}
		out = append(out, row)
	}
	return out
}

func TestStreamHash(t *testing.T) {
	// Node's hashCode (util.js of 0.3.1) gives these.
	for s, want := range map[string]int32{"abc": 96354, "/": 47, "": 0, "/chat": 46457863,
		"/a-rather-long-namespace": -1420888980, "/ünï😀": 1583576977} {
		if got := streamHash(s); got != want {
			t.Errorf("hash(%q) = %d, want %d", s, got, want)
		}
	}
	if got := streamHash("polygenelubricants"); got != -2147483648 { // Java's famous MIN_VALUE hash
		t.Errorf("wrapping hash = %d", got)
	}
	if got := streamFor("socket.io", 3, "/"); got != "socket.io-2" {
		t.Errorf("stream of / = %s", got)
	}
	if got := streamFor("s", 7, "polygenelubricants"); got != "s--2" { // JavaScript's % keeps the sign
		t.Errorf("negative hash stream = %s", got)
	}
	// -1420888980 % 7 is -0 in JavaScript, which prints as "0".
	if got := streamFor("s", 7, "/a-rather-long-namespace"); got != "s-0" {
		t.Errorf("-0 stream = %s", got)
	}
	if got := streamFor("socket.io", 1, "/x"); got != "socket.io" {
		t.Errorf("one stream = %s", got)
	}
	if nextOffset("123-4") != "123-5" || !validOffset("1-0") || validOffset("1-") || validOffset("a-1") || validOffset("12") {
		t.Error("offsets")
	}
}

// The entries Node's streams adapter writes: fields uid, nsp, type (a
// string), data (JSON, or base64 msgpack when binary), in that order; one
// pipeline per batch. Ours add mid "<uid>:<sequence>" last, the sequence
// increasing in a batch.
func TestStreamsEntryFormat(t *testing.T) {
	r := testkit.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	g := newStreamsInstance(t, r.URL(), "")
	st := g.raw.m.(*streams)
	err := g.a.Publish(context.Background(), []sdk.AdapterMessage{
		{Namespace: "/", Rooms: []string{"room1"}, Data: []byte(`["r1","x"]`)},
		{Namespace: "/chat", Except: []string{"e"}, Volatile: true, Data: []byte(`["v",{"a":[1,2.5,null]}]`)},
		{Namespace: "/", Data: []byte(`["bin",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{1, 2, 3}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ask(g, sdk.ClusterRequest{Type: sdk.RequestSocketsJoin, Namespace: "/", Rooms: []string{"a"}, Targets: []string{"b"}})
	ask(g, sdk.ClusterRequest{Type: sdk.RequestDisconnectSockets, Namespace: "/", Close: true})
	var got [][]string
	eventually(t, "five entries", func() bool { got = rawEntries(t, rdb, "socket.io"); return len(got) == 5 })
	want := [][]string{
		{"uid", st.uid, "nsp", "/", "type", "3", "data", `{"packet":{"type":2,"data":["r1","x"]},"opts":{"rooms":["room1"],"except":[],"flags":{}}}`},
		{"uid", st.uid, "nsp", "/chat", "type", "3", "data", `{"packet":{"type":2,"data":["v",{"a":[1,2.5,null]}]},"opts":{"rooms":[],"except":["e"],"flags":{"volatile":true}}}`},
		{"uid", st.uid, "nsp", "/", "type", "3", "data", ""}, // binary: checked below
		{"uid", st.uid, "nsp", "/", "type", "4", "data", `{"opts":{"rooms":["a"],"except":[],"flags":{}},"rooms":["b"]}`},
		{"uid", st.uid, "nsp", "/", "type", "6", "data", `{"opts":{"rooms":[],"except":[],"flags":{}},"close":true}`},
	}
	var lastSeq uint64
	for i := range want {
		if len(got[i]) != 11 || got[i][9] != "mid" {
			t.Fatalf("entry %d: %q: no mid last", i, got[i])
		}
		if i == 3 {
			lastSeq = 0 // requests are numbered when sent, broadcasts when the queue encodes them
		}
		pub, seq, ok := parseMID(got[i][10])
		if !ok || pub != st.uid || seq <= lastSeq {
			t.Errorf("entry %d: mid %q after sequence %d", i, got[i][10], lastSeq)
		}
		lastSeq = seq
		got[i] = got[i][:9]
		if i == 2 {
			continue
		}
		if !reflect.DeepEqual(got[i][1:], want[i]) {
			t.Errorf("entry %d:\n got %q\nwant %q", i, got[i][1:], want[i])
		}
	}
	bin := got[2][1:]
	if !reflect.DeepEqual(bin[:7], want[2][:7]) {
		t.Fatalf("binary entry %q", bin)
	}
	b, err := base64.StdEncoding.DecodeString(bin[7])
	if err != nil || b[0] != 0x82 || !strings.Contains(string(b), "\xc4\x03\x01\x02\x03") {
		t.Fatalf("binary data %q: not base64 msgpack {packet, opts} with a bin (%v)", bin[7], err)
	}
	w, ok, err := decodeStreamEntry(map[string]any{"uid": "x", "nsp": "/", "type": "3", "data": bin[7]})
	if err != nil || !ok || string(w.Data.Packet) != `{"type":2,"data":["bin",{"_placeholder":true,"num":0}]}` || !reflect.DeepEqual(w.attachments, [][]byte{{1, 2, 3}}) {
		t.Fatalf("decoded %v %v %s %v", ok, err, w.Data.Packet, w.attachments)
	}
	// MAXLEN ~ 10000 is on every XADD (Redis does not show it; the
	// command is built by streamArgs).
	if a := streamArgs("s", 10000, "u", "/", 3, "d", "u:7"); fmt.Sprint(a) != "[XADD s MAXLEN ~ 10000 * uid u nsp / type 3 data d mid u:7]" {
		t.Fatalf("args %v", a)
	}
}

// Two instances: broadcasts cross through the stream, never back to their
// sender (Node's rule without recovery).
func TestStreamsTwoInstances(t *testing.T) {
	r := testkit.StartRedis(t)
	a, b := newStreamsInstance(t, r.URL(), ""), newStreamsInstance(t, r.URL(), "")
	ca, cb := subscribe(t, a.a), subscribe(t, b.a)
	await(t, a.a, cb, "ping-a")
	await(t, b.a, ca, "ping-b")
	if len(ca.event("ping-a")) != 0 || len(cb.event("ping-b")) != 0 {
		t.Fatal("an instance got its own broadcast back")
	}
	m := sdk.AdapterMessage{Namespace: "/chat", Rooms: []string{"r1", "r2"}, Except: []string{"x"},
		Data: []byte(`["bin",{"_placeholder":true,"num":0},1.5]`), Attachments: [][]byte{{9, 8}}}
	if err := a.a.Publish(context.Background(), []sdk.AdapterMessage{m}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bin arrives", func() bool { return len(cb.event("bin")) == 1 })
	if got := cb.event("bin")[0]; !reflect.DeepEqual(got, m) {
		t.Fatalf("got %s", summarize([]sdk.AdapterMessage{got}))
	}
}

// With stream_count, each namespace has its stream (Node's choice) and a
// reader reads them all.
func TestStreamsSeveralStreams(t *testing.T) {
	r := testkit.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	a, b := newStreamsInstance(t, r.URL(), `,"stream_count":3`), newStreamsInstance(t, r.URL(), `,"stream_count":3`)
	cb := subscribe(t, b.a)
	await(t, a.a, cb, "ready")
	nsps := []string{"/", "/chat", "/admin", "/x"}
	for i, n := range nsps {
		if err := a.a.Publish(context.Background(), []sdk.AdapterMessage{{Namespace: n, Data: []byte(fmt.Sprintf(`["ns",%d]`, i))}}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every namespace's broadcast", func() bool { return len(cb.numbers("ns")) == len(nsps) })
	for _, n := range nsps {
		found := false
		for _, e := range rawEntries(t, rdb, streamFor("socket.io", 3, n)) {
			found = found || e[4] == n
		}
		if !found {
			t.Errorf("%s: nothing in %s", n, streamFor("socket.io", 3, n))
		}
	}
	if streamFor("socket.io", 3, "/") != "socket.io-2" {
		t.Fatal(streamFor("socket.io", 3, "/"))
	}
}

// Reading resumes from the last id seen: a reader cut from Redis (its
// connections through a gate), a Redis restart (with its data kept) and a
// stopped redis-server (SIGSTOP/SIGCONT) lose nothing still in the stream.
func TestStreamsReadResumes(t *testing.T) {
	dir := t.TempDir()
	r := testkit.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always", "--dir", dir)
	g := newGate(t, r.Addr())
	a := newStreamsInstance(t, r.URL(), "")
	b := newStreamsInstance(t, g.URL(), `,"block_time":"500ms"`)
	cb := subscribe(t, b.a)
	await(t, a.a, cb, "ready")

	next := 0
	publish := func(n int) {
		t.Helper()
		if err := a.a.Publish(context.Background(), numbered("n", next, n)); err != nil {
			t.Fatal(err)
		}
		next += n
	}
	complete := func(what string) {
		t.Helper()
		eventually(t, what, func() bool { return len(cb.numbers("n")) == next })
		for n, c := range cb.numbers("n") {
			if c != 1 {
				t.Fatalf("%s: %d delivered %d times", what, n, c)
			}
		}
	}

	publish(300)
	complete("before")

	g.set(false) // the reader loses Redis; the writer keeps publishing
	for i := 0; i < 10; i++ {
		publish(50)
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if d := degraded(t, b.st); d == "" {
		t.Error("the cut reader is not degraded")
	}
	g.set(true)
	complete("after the reader's outage")

	r.Restart() // the stream survives in the append-only file
	publish(300)
	complete("after a Redis restart")

	if err := r.Proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	publish(100) // queued: Redis answers after SIGCONT, within go-redis's 3 s read timeout
	time.Sleep(2 * time.Second)
	if err := r.Proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	publish(300)
	complete("after SIGSTOP/SIGCONT")
	t.Logf("%d broadcasts, each delivered once", next)
}

// Without EnableRecovery an instance's own broadcasts are not delivered
// back; with it the non-volatile ones are, with their offsets, and every
// non-volatile broadcast carries its entry id.
func TestStreamsOwnEcho(t *testing.T) {
	r := testkit.StartRedis(t)
	a, b := newStreamsInstance(t, r.URL(), ""), newStreamsInstance(t, r.URL(), "")
	ca, cb := subscribe(t, a.a), subscribe(t, b.a)
	await(t, a.a, cb, "ready")
	if len(ca.event("ready")) != 0 || cb.event("ready")[0].Offset != "" {
		t.Fatal("own echo or offset without recovery")
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := a.raw.EnableRecovery(context.Background(), sdk.RecoveryConfig{MaxDisconnection: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.a.Publish(context.Background(), []sdk.AdapterMessage{
		{Namespace: "/", Data: []byte(`["kept"]`)}, {Namespace: "/", Data: []byte(`["vol"]`), Volatile: true},
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b gets both", func() bool { return len(cb.event("kept")) == 1 && len(cb.event("vol")) == 1 })
	eventually(t, "a gets its own kept", func() bool { return len(ca.event("kept")) == 1 })
	kept := ca.event("kept")[0]
	if !validOffset(kept.Offset) || len(ca.event("vol")) != 0 {
		t.Fatalf("own: kept offset %q, volatile %d", kept.Offset, len(ca.event("vol")))
	}
	if cb.event("kept")[0].Offset != "" {
		t.Fatal("b has no recovery: no offset")
	}
	// Others' broadcasts to a recovering instance: offsets on the
	// non-volatile ones only.
	if err := b.a.Publish(context.Background(), []sdk.AdapterMessage{
		{Namespace: "/", Data: []byte(`["from-b"]`)}, {Namespace: "/", Data: []byte(`["from-b-vol"]`), Volatile: true},
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a gets b's", func() bool { return len(ca.event("from-b")) == 1 && len(ca.event("from-b-vol")) == 1 })
	if o := ca.event("from-b")[0].Offset; !validOffset(o) || o <= kept.Offset && len(o) == len(kept.Offset) {
		t.Fatalf("offset %q after %q", o, kept.Offset)
	}
	if ca.event("from-b-vol")[0].Offset != "" {
		t.Fatal("volatile with an offset")
	}
}

// Sessions: saved, restored once with the broadcasts they missed (rooms,
// except, namespace, volatile), expired; live ones refreshed while the
// instance runs; a trimmed offset gives ErrNoSession.
func TestStreamsSessions(t *testing.T) {
	r := testkit.StartRedis(t, "--stream-node-max-entries", "10")
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	a := newStreamsInstance(t, r.URL(), `,"max_len":50`)
	ctx := context.Background()
	const maxDisc = 1500 * time.Millisecond
	if err := a.raw.EnableRecovery(ctx, sdk.RecoveryConfig{MaxDisconnection: maxDisc}); err != nil {
		t.Fatal(err)
	}
	ca := subscribe(t, a.a)
	await(t, a.a, ca, "start") // the cursor now has an entry
	sess := sdk.Session{Namespace: "/", ID: "sid-1", PID: "pid-1", Rooms: []string{"sid-1", "r1"}, Data: []byte(`{"a":[1,"x"],"b":null}`), User: "u1"}
	if err := a.raw.SaveSessions(ctx, []sdk.SessionChange{{State: sdk.SessionSaved, Session: sess}}); err != nil {
		t.Fatal(err)
	}
	if err := a.a.Publish(ctx, []sdk.AdapterMessage{
		{Namespace: "/", Rooms: []string{"r1"}, Data: []byte(`["to-r1"]`)},
		{Namespace: "/", Rooms: []string{"r2"}, Data: []byte(`["to-r2"]`)},
		{Namespace: "/", Data: []byte(`["to-all"]`)},
		{Namespace: "/", Except: []string{"r1"}, Data: []byte(`["except-r1"]`)},
		{Namespace: "/other", Data: []byte(`["other-nsp"]`)},
		{Namespace: "/", Data: []byte(`["volatile"]`), Volatile: true},
		{Namespace: "/", Rooms: []string{"sid-1"}, Data: []byte(`["to-me",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{5}}},
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "published", func() bool { return len(ca.event("to-me")) == 1 })
	rs, err := a.raw.RestoreSession(ctx, "/", "pid-1", "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range rs.Missed {
		names = append(names, string(m.Data))
		if !validOffset(m.Offset) {
			t.Errorf("missed %s without offset", m.Data)
		}
	}
	if want := []string{`["to-r1"]`, `["to-all"]`, `["to-me",{"_placeholder":true,"num":0}]`}; !reflect.DeepEqual(names, want) {
		t.Fatalf("missed %q, want %q", names, want)
	}
	if !reflect.DeepEqual(rs.Missed[2].Attachments, [][]byte{{5}}) || rs.Missed[2].Offset != ca.event("to-me")[0].Offset {
		t.Fatalf("binary missed %+v", rs.Missed[2])
	}
	if rs.ID != "sid-1" || rs.PID != "pid-1" || rs.User != "u1" || string(rs.Data) != string(sess.Data) || !reflect.DeepEqual(rs.Rooms, sess.Rooms) {
		t.Fatalf("restored %+v data %s", rs.Session, rs.Data)
	}
	if _, err := a.raw.RestoreSession(ctx, "/", "pid-1", ""); !errors.Is(err, sdk.ErrNoSession) {
		t.Fatalf("second restore: %v", err)
	}
	// From a client's offset: only what came after it.
	if err := a.raw.SaveSessions(ctx, []sdk.SessionChange{{State: sdk.SessionSaved, Session: sess}}); err != nil {
		t.Fatal(err)
	}
	rs, err = a.raw.RestoreSession(ctx, "/", "pid-1", ca.event("to-all")[0].Offset)
	if err != nil || len(rs.Missed) != 1 || string(rs.Missed[0].Data) != `["to-me",{"_placeholder":true,"num":0}]` {
		t.Fatalf("from offset: %v %+v", err, rs)
	}

	t.Run("expiry", func(t *testing.T) {
		if err := a.raw.SaveSessions(ctx, []sdk.SessionChange{{State: sdk.SessionSaved, Session: sess}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(maxDisc + 300*time.Millisecond)
		if _, err := a.raw.RestoreSession(ctx, "/", "pid-1", ""); !errors.Is(err, sdk.ErrNoSession) {
			t.Fatalf("expired: %v", err)
		}
	})

	t.Run("ended", func(t *testing.T) {
		s2 := sess
		s2.PID = "pid-2"
		if err := a.raw.SaveSessions(ctx, []sdk.SessionChange{{State: sdk.SessionSaved, Session: s2}, {State: sdk.SessionEnded, Session: s2}}); err != nil {
			t.Fatal(err)
		}
		if n := rdb.Exists(ctx, "sio:session:pid-2").Val(); n != 0 {
			t.Fatal("ended session kept")
		}
	})

	t.Run("live refresh", func(t *testing.T) {
		b := newStreamsInstance(t, r.URL(), "")
		if err := b.raw.EnableRecovery(ctx, sdk.RecoveryConfig{MaxDisconnection: maxDisc}); err != nil {
			t.Fatal(err)
		}
		live := sess
		live.PID = "pid-live"
		if err := b.raw.SaveSessions(ctx, []sdk.SessionChange{{State: sdk.SessionLive, Session: live}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2*maxDisc + 500*time.Millisecond)
		if n := rdb.Exists(ctx, "sio:session:pid-live").Val(); n != 1 {
			t.Fatal("live session expired while its instance runs")
		}
		b.raw.close() // the refresh stops
		time.Sleep(maxDisc + 300*time.Millisecond)
		if n := rdb.Exists(ctx, "sio:session:pid-live").Val(); n != 0 {
			t.Fatal("live session outlived its instance")
		}
	})

	t.Run("offset trimmed", func(t *testing.T) {
		s3 := sess
		s3.PID = "pid-3"
		old := ca.event("to-r1")[0].Offset
		if err := a.raw.SaveSessions(ctx, []sdk.SessionChange{{State: sdk.SessionSaved, Session: s3}}); err != nil {
			t.Fatal(err)
		}
		if err := a.a.Publish(ctx, numbered("fill", 0, 200)); err != nil {
			t.Fatal(err)
		}
		// (With so short a stream the reader itself misses entries trimmed
		// before it reads them, as Node's would.)
		eventually(t, "trimmed", func() bool { return len(rdb.XRange(ctx, "socket.io", old, old).Val()) == 0 })
		if _, err := a.raw.RestoreSession(ctx, "/", "pid-3", old); !errors.Is(err, sdk.ErrNoSession) {
			t.Fatalf("trimmed offset: %v", err)
		}
		newest := rdb.XRevRangeN(ctx, "socket.io", "+", "-", 1).Val()[0].ID
		if _, err := a.raw.RestoreSession(ctx, "/", "unknown", newest); !errors.Is(err, sdk.ErrNoSession) {
			t.Fatalf("unknown pid: %v", err)
		}
	})
}

// Classic and sharded modes refuse recovery with an error on "mode"; bad
// streams attributes are errors on theirs.
func TestStreamsConfigErrors(t *testing.T) {
	r := testkit.StartRedis(t)
	for _, m := range []string{"classic", "sharded"} {
		in := newRequestInstance(t, fmt.Sprintf(`{"url":%q,"mode":%q}`, r.URL(), m))
		// Through the gRPC boundary, as the host calls it.
		err := in.a.(sdk.SessionStore).EnableRecovery(context.Background(), sdk.RecoveryConfig{MaxDisconnection: time.Minute})
		var pe *sdk.PluginError // the host's side of an sdk.AttrError
		if !errors.As(err, &pe) || pe.Attribute != "mode" || !strings.Contains(pe.Message, `mode = "streams"`) {
			t.Fatalf("%s: %v", m, err)
		}
		err = in.raw.EnableRecovery(context.Background(), sdk.RecoveryConfig{MaxDisconnection: time.Minute})
		var ae *sdk.AttributeError
		if !errors.As(err, &ae) || ae.Attribute != "mode" {
			t.Fatalf("%s: %v", m, err)
		}
	}
	// The streams mode through the boundary: enabled, and an unknown pid is
	// ErrNoSession on the host's side.
	g := newStreamsInstance(t, r.URL(), "")
	ss := g.a.(sdk.SessionStore)
	if err := ss.EnableRecovery(context.Background(), sdk.RecoveryConfig{MaxDisconnection: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.RestoreSession(context.Background(), "/", "nobody", "1-0"); !errors.Is(err, sdk.ErrNoSession) {
		t.Fatalf("unknown pid through the boundary: %v", err)
	}
	for attr, v := range map[string]string{"max_len": `0`, "read_count": `1.5`, "stream_count": `-1`, "block_time": `"soon"`, "session_key_prefix": `""`} {
		p := &plugin{}
		err := p.Configure(context.Background(), sdk.Config(fmt.Sprintf(`{"url":%q,"mode":"streams",%q:%s}`, r.URL(), attr, v)))
		p.close()
		var ae *sdk.AttributeError
		if !errors.As(err, &ae) || ae.Attribute != attr {
			t.Errorf("%s = %s: %v", attr, v, err)
		}
	}
}

// BenchmarkStreamsFlush is the streams mode's publish path: one XADD
// pipeline per batch of 256 broadcasts (b.N counts broadcasts).
func BenchmarkStreamsFlush(b *testing.B) {
	r := testkit.StartRedis(b)
	p := &plugin{}
	if err := p.Configure(context.Background(), sdk.Config(fmt.Sprintf(`{"url":%q,"mode":"streams"}`, r.URL()))); err != nil {
		b.Fatal(err)
	}
	defer p.close()
	st := p.m.(*streams)
	batch := make([]sdk.AdapterMessage, maxDeliver)
	for i := range batch {
		batch[i] = sdk.AdapterMessage{Namespace: "/", Rooms: []string{"room1"}, Data: []byte(fmt.Sprintf(`["chat",{"n":%d,"text":"hello there"}]`, i))}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += len(batch) {
		if err := st.flush(context.Background(), batch[:min(len(batch), b.N-n)], func(err error) { b.Fatal(err) }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// Subscribe returns at once when its context ends (its blocked XREAD is
// interrupted), and a core that failed a batch gets it again from the next
// Subscribe.
func TestStreamsSubscribeHandover(t *testing.T) {
	r := testkit.StartRedis(t)
	a, b := newStreamsInstance(t, r.URL(), ""), newStreamsInstance(t, r.URL(), "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.raw.Subscribe(ctx, func([]sdk.AdapterMessage) error { return nil }) }()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Subscribe still blocked a second after cancel")
	}
	t.Logf("returned %v after cancel", time.Since(start))

	refused := errors.New("core gone")
	go func() {
		done <- b.raw.Subscribe(context.Background(), func([]sdk.AdapterMessage) error { return refused })
	}()
	time.Sleep(200 * time.Millisecond)
	if err := a.a.Publish(context.Background(), numbered("n", 0, 10)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, refused) {
		t.Fatalf("Subscribe returned %v", err)
	}
	cb := subscribe(t, b.raw)
	eventually(t, "the refused batch again", func() bool { return len(cb.numbers("n")) == 10 })
}
