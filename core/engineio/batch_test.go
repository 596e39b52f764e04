package engineio

import (
	"fmt"
	"io"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"
	"github.com/socketfleet/socketfleet/core/protocol/eiowire"
)

// collect is a Handler that hands out its sessions.
type collect struct{ sessions chan *Session }

func (c *collect) Open(s *Session) {
	s.SetHandler(func(eiowire.Packet) {}, func(string) {})
	c.sessions <- s
}

// settle waits until s has finished writing what it sent so far (the open
// packet): a session whose writer is busy is not held by a Batch.
func settle(t *testing.T, s *Session) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		busy := s.ws.writing
		s.mu.Unlock()
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("session still writing after 3s")
		}
	}
}

func newCollectServer(t *testing.T) (*httptest.Server, *collect) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	h := &collect{sessions: make(chan *Session, 1024)}
	ts := httptest.NewServer(NewServer(Options{Log: logrus.NewEntry(log), SendQueue: 10000}, h))
	t.Cleanup(ts.Close)
	return ts, h
}

// What a Batch holds is not written before Flush, and then arrives whole
// and in order, ahead of what was sent meanwhile without the batch.
func TestBatchHoldsUntilFlush(t *testing.T) {
	ts, h := newCollectServer(t)
	c := dialWS(t, ts)
	s := <-h.sessions
	settle(t, s)
	got := make(chan string, 64)
	go func() {
		defer close(got)
		for {
			_, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			got <- string(m)
		}
	}()
	var b Batch
	for i := 0; i < 50; i++ {
		b.Send(s, []*Message{NewText(eiowire.Message, []byte(fmt.Sprint(i)))})
	}
	if b.Len() != 1 {
		t.Fatalf("batch holds %d sessions, want 1", b.Len())
	}
	s.Send(NewText(eiowire.Message, []byte("late")))
	select {
	case m := <-got:
		t.Fatalf("read %q before Flush", m)
	case <-time.After(200 * time.Millisecond):
	}
	b.Flush()
	if b.Len() != 0 {
		t.Fatalf("batch holds %d sessions after Flush", b.Len())
	}
	for i := 0; i <= 50; i++ {
		want := fmt.Sprint("4", i)
		if i == 50 {
			want = "4late"
		}
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("message %d: %q, want %q", i, m, want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("message %d did not arrive", i)
		}
	}
}

// A Flush over more sessions than one goroutine writes alone runs on
// several cores; every client still gets every message once, in order.
func TestBatchFlushOverCores(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ts, h := newCollectServer(t)
	const n, rounds = 3 * flushChunk, 5
	conns := make([]*websocket.Conn, n)
	sessions := make([]*Session, n)
	for i := range conns {
		conns[i] = dialWS(t, ts)
		sessions[i] = <-h.sessions
	}
	for _, s := range sessions {
		settle(t, s)
	}
	var b Batch
	for r := 0; r < rounds; r++ {
		for k := 0; k < 3; k++ {
			m := []*Message{NewText(eiowire.Message, []byte(fmt.Sprint(r*3+k)))}
			for _, s := range sessions {
				b.Send(s, m)
			}
		}
		if b.Len() != n {
			t.Fatalf("round %d: %d held, want %d", r, b.Len(), n)
		}
		b.Flush()
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, c := range conns {
		wg.Go(func() {
			for want := 0; want < rounds*3; want++ {
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, m, err := c.ReadMessage()
				if err != nil || string(m) != fmt.Sprint("4", want) {
					errs <- fmt.Errorf("message %d: %q %v", want, m, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A broadcast is split over the cores only with enough of them and enough
// recipients: on 2 cores it is written in one pass (splitMinProcs).
func TestSplitPays(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range []struct {
		procs, n int
		want     bool
	}{
		{1, 10000, false},
		{2, 10000, false},
		{splitMinProcs, 2*flushChunk - 1, false},
		{splitMinProcs, 2 * flushChunk, true},
		{8, 10000, true},
	} {
		runtime.GOMAXPROCS(c.procs)
		if got := SplitPays(c.n); got != c.want {
			t.Errorf("GOMAXPROCS %d, %d recipients: SplitPays %v, want %v", c.procs, c.n, got, c.want)
		}
	}
}

// A delivery to an idle WebSocket reads the session from srv to ws.fd, and
// Prefetch loads two lines for it: they must stay within them.
func TestDeliveryFieldsInTwoCacheLines(t *testing.T) {
	var s Session
	end := unsafe.Offsetof(s.ws) + unsafe.Offsetof(s.ws.fd) + unsafe.Sizeof(s.ws.fd)
	if end > 128 {
		t.Fatalf("srv to ws.fd spans %d bytes, more than the two cache lines Prefetch loads", end)
	}
}
