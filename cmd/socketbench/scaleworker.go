package main

// socketbench scale-worker: one load-generating process of socketbench
// scale (scale.go). It holds at most its descriptor limit of idle
// WebSocket clients, from one loopback source address, and takes
// commands as JSON lines on stdin, answering each with one JSON line on
// stdout: connect, churn (room joins and leaves), report (what the
// numbered broadcasts delivered), reset. Closing stdin ends it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// scaleMaxSeq bounds the numbered broadcasts one run counts.
const scaleMaxSeq = 4096

type workerCmd struct {
	Cmd      string  `json:"cmd"`
	URL      string  `json:"url,omitempty"`
	N        int     `json:"n,omitempty"`
	Src      string  `json:"src,omitempty"`
	InFlight int     `json:"c,omitempty"`
	Rate     float64 `json:"rate,omitempty"` // churn: operations/s
	Rooms    int     `json:"rooms,omitempty"`
	Secs     float64 `json:"secs,omitempty"`
}

type workerReply struct {
	OK        bool    `json:"ok"`
	Err       string  `json:"err,omitempty"`
	Connected int     `json:"connected,omitempty"`
	Failed    int     `json:"failed,omitempty"`
	FirstErr  string  `json:"first_err,omitempty"`
	Secs      float64 `json:"secs,omitempty"`
	Alive     int     `json:"alive"`
	Ops       int     `json:"ops,omitempty"`
	// report: deliveries and the last arrival (unix ns) per seq, up to the
	// highest seq seen; duplicates and out-of-order arrivals.
	Delivered []int64 `json:"delivered,omitempty"`
	LastNs    []int64 `json:"last_ns,omitempty"`
	Dups      int64   `json:"dups"`
}

// scaleWorker is the worker's state.
type scaleWorker struct {
	clients []*scaleClient
	alive   atomic.Int64
	dups    atomic.Int64
	maxSeq  atomic.Int64
	count   [scaleMaxSeq]atomic.Int64
	last    [scaleMaxSeq]atomic.Int64
}

type scaleClient struct {
	cl   *client
	last atomic.Int64 // highest seq received, -1 before the first
	room int          // churn: the room joined, -1 none (churn goroutine only)
}

func scaleWorkerMain(ctx context.Context, stdin io.Reader, stdout io.Writer) int {
	w := &scaleWorker{}
	defer w.closeAll()
	enc := json.NewEncoder(stdout)
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		var cmd workerCmd
		if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			_ = enc.Encode(workerReply{Err: err.Error()})
			continue
		}
		r := w.do(ctx, cmd)
		r.Alive = int(w.alive.Load())
		if err := enc.Encode(r); err != nil {
			return 1
		}
	}
	return 0
}

func (w *scaleWorker) do(ctx context.Context, cmd workerCmd) workerReply {
	switch cmd.Cmd {
	case "connect":
		return w.connect(ctx, cmd)
	case "churn":
		return w.churn(ctx, cmd)
	case "report":
		return w.report()
	case "reset":
		for i := range w.count {
			w.count[i].Store(0)
			w.last[i].Store(0)
		}
		w.dups.Store(0)
		w.maxSeq.Store(-1)
		for _, c := range w.clients {
			c.last.Store(-1)
		}
		return workerReply{OK: true}
	}
	return workerReply{Err: fmt.Sprintf("unknown command %q", cmd.Cmd)}
}

func (w *scaleWorker) connect(ctx context.Context, cmd workerCmd) workerReply {
	c := &config{path: "/socket.io/", transport: "websocket", inFlight: max(1, cmd.InFlight), timeout: 30 * time.Second}
	if cmd.Src != "" {
		if c.local = net.ParseIP(cmd.Src); c.local == nil {
			return workerReply{Err: "bad source address " + cmd.Src}
		}
	}
	sc := make([]*scaleClient, cmd.N)
	t0 := time.Now()
	_, failed, firstErr := connectAll(ctx, c, cmd.N, func(int) string { return cmd.URL }, nil,
		func(i int, cl *client) error {
			s := &scaleClient{cl: cl, room: -1}
			s.last.Store(-1)
			sc[i] = s
			w.alive.Add(1)
			go w.read(s)
			return nil
		}, nil)
	secs := time.Since(t0).Seconds()
	for _, s := range sc {
		if s != nil {
			w.clients = append(w.clients, s)
		}
	}
	return workerReply{OK: true, Connected: cmd.N - failed, Failed: failed, FirstErr: firstErr, Secs: round(secs, 3)}
}

var msgPrefix = []byte(`2["msg",{"seq":`)

// read consumes a client's packets (answering pings) and counts the
// numbered broadcasts: `2["msg",{"seq":N,...}]`.
func (w *scaleWorker) read(s *scaleClient) {
	defer func() {
		select {
		case <-s.cl.closed:
		default:
			w.alive.Add(-1)
		}
	}()
	for {
		p, err := s.cl.next()
		if err != nil {
			return
		}
		rest, ok := bytes.CutPrefix(p, msgPrefix)
		if !ok {
			continue
		}
		end := bytes.IndexAny(rest, ",}")
		if end < 0 {
			continue
		}
		seq, err := strconv.Atoi(string(rest[:end]))
		if err != nil || seq < 0 || seq >= scaleMaxSeq {
			continue
		}
		now := time.Now().UnixNano()
		if int64(seq) <= s.last.Load() {
			w.dups.Add(1)
			continue
		}
		s.last.Store(int64(seq))
		w.count[seq].Add(1)
		for {
			l := w.last[seq].Load()
			if now <= l || w.last[seq].CompareAndSwap(l, now) {
				break
			}
		}
		for {
			m := w.maxSeq.Load()
			if int64(seq) <= m || w.maxSeq.CompareAndSwap(m, int64(seq)) {
				break
			}
		}
	}
}

func (w *scaleWorker) report() workerReply {
	r := workerReply{OK: true, Dups: w.dups.Load()}
	for i := 0; i <= int(w.maxSeq.Load()) && i < scaleMaxSeq; i++ {
		r.Delivered = append(r.Delivered, w.count[i].Load())
		r.LastNs = append(r.LastNs, w.last[i].Load())
	}
	return r
}

// churn joins and leaves rooms at cmd.Rate operations per second for
// cmd.Secs: a random client leaves its room if it is in one, else joins
// one of cmd.Rooms. The events are not acknowledged (the server's CPU is
// what is measured); a failed send counts as an error.
func (w *scaleWorker) churn(ctx context.Context, cmd workerCmd) workerReply {
	if len(w.clients) == 0 || cmd.Rate <= 0 || cmd.Rooms <= 0 {
		return workerReply{Err: "churn: no clients, rate or rooms"}
	}
	const tick = 10 * time.Millisecond
	perTick := cmd.Rate * tick.Seconds()
	t := time.NewTicker(tick)
	defer t.Stop()
	end := time.Now().Add(time.Duration(cmd.Secs * float64(time.Second)))
	var (
		ops, errs int
		owed      float64
		buf       []byte
		mu        sync.Mutex // one churn at a time per worker; guards room
	)
	mu.Lock()
	defer mu.Unlock()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return workerReply{Err: ctx.Err().Error()}
		case <-t.C:
		}
		owed += perTick
		for ; owed >= 1; owed-- {
			s := w.clients[rand.IntN(len(w.clients))]
			ev := "join"
			room := rand.IntN(cmd.Rooms)
			if s.room >= 0 {
				ev, room = "leave", s.room
			}
			buf = fmt.Appendf(buf[:0], `42["%s","r%d"]`, ev, room)
			if err := s.cl.send(buf); err != nil {
				errs++
				continue
			}
			if ev == "join" {
				s.room = room
			} else {
				s.room = -1
			}
			ops++
		}
	}
	r := workerReply{OK: true, Ops: ops}
	if errs > 0 {
		r.Err = fmt.Sprintf("%d sends failed", errs)
	}
	return r
}

func (w *scaleWorker) closeAll() {
	for _, s := range w.clients {
		s.cl.close()
	}
}
