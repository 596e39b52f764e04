package main

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

// BenchmarkThroughputWhileESDown: the real core with this plugin as its
// log sink (log_level "info"), namespace "/" broadcasting "chat" to
// everyone; 1 publisher sends b.N messages as fast as the slowest reader
// allows (a window of 256, below the core's send_queue of 1024) and 10
// subscribers receive them. delivered-msgs/s counts what the 10 subscribers
// received; compare es_up with es_down (every bulk request answered 503).
// The claim: log shipping is off the message path, so throughput does not
// drop while Elasticsearch is down.
//
//	go test -run '^$' -bench ThroughputWhileESDown -benchtime 20000x .
func BenchmarkThroughputWhileESDown(b *testing.B) {
	bin, pdir := buildCoreAndPlugin(b)
	const subscribers = 10
	for _, mode := range []string{"es_up", "es_down"} {
		func() {
			t := &testing.T{} // the fake reports through t.Errorf
			es := newFakeES(t)
			defer func() { _ = es.srv.Close() }()
			if mode == "es_down" {
				es.mu.Lock()
				es.wholeFail = func(int) int { return 503 }
				es.mu.Unlock()
			}
			cfg := sinkConfig(pdir, "info", `  ping_interval = "10m"`, es.url, `  retry_max = "1s"`,
				"  event \"chat\" {\n    broadcast {}\n  }")
			core := startCore(b, bin, cfg)
			defer core.proc.Kill()

			// Readers count the chat packets each connection receives; the
			// publisher's own connection receives them too (no except_sender).
			conns := make([]*websocket.Conn, subscribers+1)
			counts := make([]atomic.Int64, subscribers+1)
			var readers sync.WaitGroup
			for i := range conns {
				c, err := testkit.DialSocketIO(websocket.DefaultDialer, testkit.SocketIOURL(core.addr), 5*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				conns[i] = c
				readers.Add(1)
				go func(i int) {
					defer readers.Done()
					for {
						_, m, err := c.ReadMessage()
						if err != nil {
							return
						}
						if strings.HasPrefix(string(m), `42["chat"`) {
							counts[i].Add(1)
						}
					}
				}(i)
			}
			defer func() {
				for _, c := range conns {
					c.Close()
				}
				readers.Wait()
			}()
			pub := conns[subscribers]
			minCount := func() int64 {
				m := counts[0].Load()
				for i := range counts {
					m = min(m, counts[i].Load())
				}
				return m
			}

			b.Run(mode, func(b *testing.B) {
				base := make([]int64, len(counts))
				for i := range counts {
					base[i] = counts[i].Load()
				}
				sent := base[0] // all counters are equal between runs
				target := sent + int64(b.N)
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					for sent-minCount() >= 256 {
						time.Sleep(20 * time.Microsecond)
					}
					if err := pub.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `42["chat",%d]`, i)); err != nil {
						b.Fatal(err)
					}
					sent++
				}
				deadline := time.Now().Add(30 * time.Second)
				for minCount() < target {
					if time.Now().After(deadline) {
						b.Fatalf("after 30 s the slowest connection has %d of %d messages:\n%s", minCount()-base[0], b.N, core.stderr.String())
					}
					time.Sleep(50 * time.Microsecond)
				}
				elapsed := time.Since(start)
				b.StopTimer()
				for i := range counts {
					if got := counts[i].Load() - base[i]; got != int64(b.N) {
						b.Fatalf("connection %d received %d of %d", i, got, b.N)
					}
				}
				b.ReportMetric(float64(subscribers*b.N)/elapsed.Seconds(), "delivered-msgs/s")
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "published-msgs/s")
				_, refused, _, _ := es.snapshot()
				b.ReportMetric(float64(refused), "es-503s")
			})
		}()
	}
}
