package socketio_test

// Broadcast fan-out benchmarks (docs/architecture.md, "Performance budgets").
//
//	go test -run '^$' -bench Broadcast10k -benchtime 200x ./core/socketio
//
// BenchmarkBroadcast10k/enqueue-polling: 10,000 Engine.IO polling sessions
// opened through the real HTTP handshake, each CONNECTed to "/" and in room
// "lobby". One op = one Namespace.BroadcastData of a chat message to the
// room. The queues are drained with real polling GETs every drainEvery
// broadcasts, outside the timer, so this measures the enqueue path only
// (encode once, adapter walk, Session.Send per recipient).
//
// BenchmarkBroadcast10k/websocket-e2e: the same broadcast to 10,000 real
// WebSocket clients living in a child process (the test binary re-executed),
// so that the fds fit the rlimit and everything measured in this process
// (CPU from getrusage, allocations from MemStats) is the server's alone.
// One op = one broadcast, and the op ends only when every client has read
// it (at most wsWindow broadcasts are in flight). Reported: wall ns per
// delivered message, server CPU ns per delivered message, allocs and bytes
// per delivered message, client CPU per delivered message.
//
// SF_BENCH_SOCKETS overrides the number of sockets (default 10000).

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/engineio"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/core/socketio"
	"github.com/socketfleet/socketfleet/internal/testkit"
)

const (
	benchRoom  = "lobby"
	drainEvery = 60 // < 64: the sessions' recycled queue arrays never grow in steady state
	wsWindow   = 32 // broadcasts in flight per client in the WebSocket benchmark
)

var (
	benchData  = []byte(`["chat:message",{"room":"lobby","text":"hello world","from":"alice"}]`)
	benchFrame = "42" + string(benchData) // what a client receives
)

func benchSockets() int {
	if v, err := strconv.Atoi(os.Getenv("SF_BENCH_SOCKETS")); err == nil && v > 0 {
		return v
	}
	return 10000
}

// roomHandler puts every socket in one room and ignores events.
type roomHandler struct{ room string }

func (h roomHandler) Connect(*socketio.Socket) error               { return nil }
func (h roomHandler) Connected(s *socketio.Socket)                 { s.Join(h.room) }
func (roomHandler) Event(*socketio.Socket, *socketio.Event)        {}
func (roomHandler) Disconnected(s *socketio.Socket, reason string) {}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// benchServer is a Socket.IO server with namespace "/" behind an httptest
// server. Heartbeats are pushed out of the way so idle sessions stay quiet.
type benchServer struct {
	sio *socketio.Server
	eio *engineio.Server
	ns  *socketio.Namespace
	ts  *httptest.Server
}

func newBenchServer(a rooms.Index, sendQueue int) *benchServer {
	log := quietLog()
	sio := socketio.NewServer(socketio.Options{Log: log, ConnectTimeout: time.Hour})
	ns := sio.AddNamespace("/", roomHandler{benchRoom}, a)
	eio := engineio.NewServer(engineio.Options{
		PingInterval: time.Hour, PingTimeout: time.Hour, SendQueue: sendQueue,
		AllowPolling: true, AllowWebSocket: true, Log: log,
	}, sio)
	ts := httptest.NewServer(eio)
	return &benchServer{sio: sio, eio: eio, ns: ns, ts: ts}
}

func (bs *benchServer) roomSize() int { return len(bs.ns.RoomIndex().Sockets([]string{benchRoom})) }

func (bs *benchServer) broadcast() int {
	return bs.ns.BroadcastData(rooms.Options{Rooms: []string{benchRoom}}, benchData, nil)
}

// ---------------------------------------------------------------------------
// Polling clients: the cheapest honest way to hold many real sessions.

type pollClients struct {
	base string
	hc   *http.Client
	sids []string
}

func newPollClients(base string) *pollClients {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Hour}
	return &pollClients{base: base + "/socket.io/?EIO=4&transport=polling", hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (pc *pollClients) do(method, sid, body string) (string, error) {
	u := pc.base
	if sid != "" {
		u += "&sid=" + sid
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := pc.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s: %d %s", method, u, resp.StatusCode, b)
	}
	return string(b), nil
}

// open runs handshake, CONNECT and reads the CONNECT reply for one client.
func (pc *pollClients) open() (string, error) {
	open, err := pc.do(http.MethodGet, "", "")
	if err != nil {
		return "", err
	}
	var hs struct {
		SID string `json:"sid"`
	}
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &hs) != nil || hs.SID == "" {
		return "", fmt.Errorf("bad open packet %q", open)
	}
	if _, err := pc.do(http.MethodPost, hs.SID, "40"); err != nil {
		return "", err
	}
	reply, err := pc.do(http.MethodGet, hs.SID, "")
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(reply, `40{"sid":"`) {
		return "", fmt.Errorf("bad CONNECT reply %q", reply)
	}
	return hs.SID, nil
}

// parallel runs fn(i) for i in [0,n) on a few workers, stopping at the first error.
func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for firstErr.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (pc *pollClients) openN(n int) error {
	pc.sids = make([]string, n)
	return parallel(n, 8, func(i int) error {
		sid, err := pc.open()
		pc.sids[i] = sid
		return err
	})
}

// drain answers every session's queue with one GET and checks it holds
// exactly `want` copies of the broadcast frame.
func (pc *pollClients) drain(want int) error {
	return parallel(len(pc.sids), 8, func(i int) error {
		body, err := pc.do(http.MethodGet, pc.sids[i], "")
		if err != nil {
			return err
		}
		if want >= 0 {
			got := strings.Count(body, "\x1e") + 1
			if got != want || !strings.HasPrefix(body, benchFrame) {
				return fmt.Errorf("session %d: %d packets (want %d): %.120q", i, got, want, body)
			}
		}
		return nil
	})
}

// ---------------------------------------------------------------------------
// Correctness: a broadcast is encoded once and the same frame is queued on
// every recipient.

// recordingAdapter wraps the memory adapter and records, per recipient,
// exactly the messages the adapter hands to the socket (what Session.Send
// queues).
type recordingAdapter struct {
	*rooms.Memory
	mu   sync.Mutex
	got  map[string][]*engineio.Message
	hits int
}

type recordingMember struct {
	rooms.Member
	a *recordingAdapter
}

func (m recordingMember) Deliver(msgs []*engineio.Message, b *engineio.Batch) {
	m.a.mu.Lock()
	m.a.got[m.ID()] = append(m.a.got[m.ID()], msgs...)
	m.a.hits++
	m.a.mu.Unlock()
	m.Member.Deliver(msgs, b)
}

func (a *recordingAdapter) Add(m rooms.Member) { a.Memory.Add(recordingMember{m, a}) }

func TestBroadcastEncodesOnce(t *testing.T) {
	const n = 200
	rec := &recordingAdapter{Memory: rooms.NewMemory(), got: map[string][]*engineio.Message{}}
	bs := newBenchServer(rec, 0)
	defer bs.ts.Close()
	pc := newPollClients(bs.ts.URL)
	if err := pc.openN(n); err != nil {
		t.Fatal(err)
	}
	if got := bs.roomSize(); got != n {
		t.Fatalf("room has %d sockets, want %d", got, n)
	}
	rec.mu.Lock()
	clear(rec.got)
	rec.hits = 0
	rec.mu.Unlock()

	if got := bs.broadcast(); got != n {
		t.Fatalf("broadcast reached %d sockets, want %d", got, n)
	}
	rec.mu.Lock()
	var first *engineio.Message
	for id, msgs := range rec.got {
		if len(msgs) != 1 {
			t.Fatalf("socket %s got %d messages", id, len(msgs))
		}
		if first == nil {
			first = msgs[0]
		}
		if msgs[0] != first {
			t.Fatalf("socket %s got its own *Message %p, others %p: the frame was encoded per recipient", id, msgs[0], first)
		}
	}
	hits := rec.hits
	rec.mu.Unlock()
	if hits != n || len(rec.got) != n {
		t.Fatalf("%d deliveries to %d sockets, want %d", hits, len(rec.got), n)
	}
	if first.Binary || string(first.Frame) != "4"+benchFrame[1:] {
		t.Fatalf("shared message: Binary=%v Frame=%q", first.Binary, first.Frame)
	}
	if err := pc.drain(1); err != nil {
		t.Fatal(err)
	}
}

// TestBroadcastAllocsIndependentOfRecipients: in steady state (queues'
// backing arrays recycled) a broadcast allocates a constant handful of
// objects, none per recipient.
func TestBroadcastAllocsIndependentOfRecipients(t *testing.T) {
	perRun := func(n int) float64 {
		bs := newBenchServer(nil, 0)
		defer bs.ts.Close()
		pc := newPollClients(bs.ts.URL)
		if err := pc.openN(n); err != nil {
			t.Fatal(err)
		}
		// Two fill/drain cycles give every session two recycled queue arrays
		// of capacity 64.
		for c := 0; c < 2; c++ {
			for i := 0; i < drainEvery; i++ {
				bs.broadcast()
			}
			if err := pc.drain(drainEvery); err != nil {
				t.Fatal(err)
			}
		}
		// AllocsPerRun counts every goroutine's allocations (HTTP handlers,
		// the race detector's), which only ever add: the least of three
		// measurements is the broadcast's own.
		const runs = 20 // +1 warm-up run each: 63 in all, under capacity 64
		least := math.Inf(1)
		for range 3 {
			least = min(least, testing.AllocsPerRun(runs, func() { bs.broadcast() }))
		}
		if err := pc.drain(3 * (runs + 1)); err != nil {
			t.Fatal(err)
		}
		return least
	}
	small, large := perRun(50), perRun(500)
	t.Logf("allocs per broadcast: %.1f to 50 sockets, %.1f to 500 sockets", small, large)
	// One allocation per recipient would add 450 between the two; the
	// margin absorbs what other goroutines allocate under -race and load.
	if large > small+8 || large > 20 {
		t.Errorf("allocations grow with recipients: %.1f (50) vs %.1f (500)", small, large)
	}
}

// TestBroadcastWebSocketFrames: WebSocket recipients get the frame intact
// (the frame built once and shared), text and binary attachments alike.
func TestBroadcastWebSocketFrames(t *testing.T) {
	const n = 20
	bs := newBenchServer(nil, 0)
	defer bs.ts.Close()
	url := "ws" + strings.TrimPrefix(bs.ts.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		c, err := testkit.DialSocketIO(websocket.DefaultDialer, url, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	// The bench handler joins the room in Connected, right after the reply.
	for deadline := time.Now().Add(2 * time.Second); bs.roomSize() != n && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := bs.roomSize(); got != n {
		t.Fatalf("room has %d sockets", got)
	}
	bs.broadcast()
	bs.ns.BroadcastData(rooms.Options{Rooms: []string{benchRoom}},
		[]byte(`["file",{"_placeholder":true,"num":0}]`), [][]byte{{1, 2, 3}})
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		want := []struct {
			kind int
			data string
		}{
			{websocket.TextMessage, benchFrame},
			{websocket.TextMessage, `451-["file",{"_placeholder":true,"num":0}]`},
			{websocket.BinaryMessage, "\x01\x02\x03"},
		}
		for _, w := range want {
			kind, data, err := c.ReadMessage()
			if err != nil || kind != w.kind || string(data) != w.data {
				t.Fatalf("client %d: got %d %q %v, want %d %q", i, kind, data, err, w.kind, w.data)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Benchmarks

func BenchmarkBroadcast10k(b *testing.B) {
	b.Run("enqueue-polling", benchEnqueuePolling)
	b.Run("websocket-e2e", benchWebSocketE2E)
}

type memSample struct {
	mallocs, bytes uint64
	cpu            time.Duration
}

// sampleMem reads the allocation counters and this process's CPU time.
// ReadMemStats stops the world; it is kept out of the measured interval by
// reading the CPU clock after it at the start (last=true) and before it at
// the end (last=false).
func sampleMem(cpuLast bool) memSample {
	var s memSample
	if !cpuLast {
		s.cpu = processCPU()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.mallocs, s.bytes = ms.Mallocs, ms.TotalAlloc
	if cpuLast {
		s.cpu = processCPU()
	}
	return s
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (a memSample) sub(b memSample) memSample {
	return memSample{a.mallocs - b.mallocs, a.bytes - b.bytes, a.cpu - b.cpu}
}

func (a *memSample) add(b memSample) { a.mallocs += b.mallocs; a.bytes += b.bytes; a.cpu += b.cpu }

// The 10,000 polling sessions are set up once per process and reused by
// every b.N round.
var (
	pollFixOnce sync.Once
	pollFix     *benchServer
	pollFixCl   *pollClients
	pollFixErr  error
)

func pollFixture(b *testing.B) (*benchServer, *pollClients) {
	pollFixOnce.Do(func() {
		n := benchSockets()
		start := time.Now()
		bs := newBenchServer(nil, 0)
		pc := newPollClients(bs.ts.URL)
		if pollFixErr = pc.openN(n); pollFixErr == nil && bs.roomSize() != n {
			pollFixErr = fmt.Errorf("room has %d sockets, want %d", bs.roomSize(), n)
		}
		// Warm the recycled queue arrays (see drainEvery).
		for c := 0; c < 2 && pollFixErr == nil; c++ {
			for i := 0; i < drainEvery; i++ {
				bs.broadcast()
			}
			pollFixErr = pc.drain(drainEvery)
		}
		pollFix, pollFixCl = bs, pc
		b.Logf("polling fixture: %d sessions in %v", n, time.Since(start).Round(time.Millisecond))
	})
	if pollFixErr != nil {
		b.Fatal(pollFixErr)
	}
	return pollFix, pollFixCl
}

func benchEnqueuePolling(b *testing.B) {
	bs, pc := pollFixture(b)
	n := len(pc.sids)
	b.ResetTimer()
	b.StopTimer()
	var tot memSample
	for done := 0; done < b.N; {
		k := min(drainEvery, b.N-done)
		before := sampleMem(true)
		b.StartTimer()
		for i := 0; i < k; i++ {
			if got := bs.broadcast(); got != n {
				b.Fatalf("broadcast reached %d of %d sockets", got, n)
			}
		}
		b.StopTimer()
		tot.add(sampleMem(false).sub(before))
		done += k
		if err := pc.drain(k); err != nil {
			b.Fatal(err)
		}
	}
	recipients := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/recipients, "ns/recipient")
	b.ReportMetric(float64(tot.cpu.Nanoseconds())/recipients, "cpu-ns/recipient")
	b.ReportMetric(float64(tot.mallocs)/recipients, "allocs/recipient")
	b.ReportMetric(float64(tot.bytes)/recipients, "B/recipient")
	b.ReportMetric(float64(tot.mallocs)/float64(b.N), "allocs/broadcast")
}

// ---------------------------------------------------------------------------
// WebSocket end to end, clients in a child process.

// wsFixture is the server side plus the child process holding the clients.
type wsFixture struct {
	bs      *benchServer
	n       int
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	counter *uint64 // messages received by all clients, shared with the child (mmap)
	mem     []byte
}

var (
	wsFixOnce sync.Once
	wsFix     *wsFixture
	wsFixErr  error
)

func raiseNoFile() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

// mapCounter maps a shared 8-byte counter backed by a file.
func mapCounter(path string, create bool) ([]byte, *uint64, error) {
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if create {
		if err := f.Truncate(4096); err != nil {
			return nil, nil, err
		}
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return mem, (*uint64)(unsafe.Pointer(&mem[0])), nil
}

func startWSFixture(b *testing.B) (*wsFixture, error) {
	raiseNoFile()
	n := benchSockets()
	bs := newBenchServer(nil, 0)
	dir, err := os.MkdirTemp("", "sf-bcast-")
	if err != nil {
		return nil, err
	}
	cpath := filepath.Join(dir, "counter")
	mem, counter, err := mapCounter(cpath, true)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBroadcastClientProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		"SF_BCAST_CHILD_URL=ws"+strings.TrimPrefix(bs.ts.URL, "http")+"/socket.io/?EIO=4&transport=websocket",
		"SF_BCAST_CHILD_N="+strconv.Itoa(n),
		"SF_BCAST_CHILD_COUNTER="+cpath)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if line == "READY" {
				ready <- nil
				go io.Copy(io.Discard, stdout)
				return
			}
			if strings.HasPrefix(line, "FAIL ") {
				ready <- errors.New(line)
				return
			}
		}
		ready <- errors.New("client process exited before READY")
	}()
	select {
	case err = <-ready:
	case <-time.After(3 * time.Minute):
		err = errors.New("client process: timeout")
	}
	if err == nil && bs.roomSize() != n {
		err = fmt.Errorf("room has %d sockets, want %d", bs.roomSize(), n)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	b.Logf("websocket fixture: %d clients in %v", n, time.Since(start).Round(time.Millisecond))
	return &wsFixture{bs: bs, n: n, cmd: cmd, stdin: stdin, counter: counter, mem: mem}, nil
}

// writeSyscalls returns the number of write-family syscalls this process
// made (syscw in /proc/self/io).
func writeSyscalls() uint64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}

// childCPU returns the client process's CPU time (10 ms resolution).
func childCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

func benchWebSocketE2E(b *testing.B) {
	wsFixOnce.Do(func() { wsFix, wsFixErr = startWSFixture(b) })
	if wsFixErr != nil {
		b.Fatal(wsFixErr)
	}
	f := wsFix
	n := uint64(f.n)
	base := atomic.LoadUint64(f.counter)
	wait := func(target uint64) {
		deadline := time.Now().Add(time.Minute)
		for atomic.LoadUint64(f.counter) < target {
			if time.Now().After(deadline) {
				b.Fatalf("clients received %d messages, want %d", atomic.LoadUint64(f.counter)-base, target-base)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	writesBefore := writeSyscalls()
	before := sampleMem(true)
	childBefore := childCPU(f.cmd.Process.Pid)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i >= wsWindow {
			wait(base + uint64(i-wsWindow)*n)
		}
		if got := f.bs.broadcast(); uint64(got) != n {
			b.Fatalf("broadcast reached %d of %d sockets", got, n)
		}
	}
	wait(base + uint64(b.N)*n)
	b.StopTimer()
	d := sampleMem(false).sub(before)
	writes := writeSyscalls() - writesBefore
	childCPU := childCPU(f.cmd.Process.Pid) - childBefore
	if got := atomic.LoadUint64(f.counter) - base; got != uint64(b.N)*n {
		b.Fatalf("clients received %d messages, want %d", got, uint64(b.N)*n)
	}
	recipients := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/recipients, "ns/recipient")
	b.ReportMetric(float64(d.cpu.Nanoseconds())/recipients, "cpu-ns/recipient")
	b.ReportMetric(float64(childCPU.Nanoseconds())/recipients, "client-cpu-ns/recipient")
	b.ReportMetric(float64(d.mallocs)/recipients, "allocs/recipient")
	b.ReportMetric(float64(d.bytes)/recipients, "B/recipient")
	b.ReportMetric(float64(writes)/recipients, "writes/recipient")
}

// TestBroadcastClientProcess is the child side of the WebSocket benchmark:
// it does nothing unless started by it.
func TestBroadcastClientProcess(t *testing.T) {
	url := os.Getenv("SF_BCAST_CHILD_URL")
	if url == "" {
		t.Skip("helper process for BenchmarkBroadcast10k/websocket-e2e")
	}
	fail := func(err error) {
		fmt.Printf("FAIL %v\n", err)
		os.Exit(1)
	}
	raiseNoFile()
	n, _ := strconv.Atoi(os.Getenv("SF_BCAST_CHILD_N"))
	_, counter, err := mapCounter(os.Getenv("SF_BCAST_CHILD_COUNTER"), false)
	if err != nil {
		fail(err)
	}
	d := &websocket.Dialer{
		NetDialContext:   (&net.Dialer{}).DialContext,
		HandshakeTimeout: 30 * time.Second,
		ReadBufferSize:   512,
		WriteBufferSize:  256,
	}
	conns := make([]*websocket.Conn, n)
	if err := parallel(n, 16, func(i int) error {
		c, err := testkit.DialSocketIO(d, url, 30*time.Second)
		conns[i] = c
		return err
	}); err != nil {
		fail(err)
	}
	for _, c := range conns {
		go func(c *websocket.Conn) {
			for {
				kind, r, err := c.NextReader()
				if err != nil {
					return
				}
				// A "2" ping would need a "3" pong; the benchmark server pings hourly.
				if kind == websocket.TextMessage {
					var one [1]byte
					if m, _ := r.Read(one[:]); m == 1 && one[0] == '2' {
						if _, err := io.Copy(io.Discard, r); err == nil {
							_ = c.WriteMessage(websocket.TextMessage, []byte("3"))
						}
						continue
					}
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					return
				}
				atomic.AddUint64(counter, 1)
			}
		}(c)
	}
	fmt.Println("READY")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent exits
	os.Exit(0)
}
