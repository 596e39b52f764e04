package main

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// BenchmarkHandshake measures full Socket.IO handshakes over WebSocket
// (upgrade, open packet, CONNECT, CONNECT reply) against the real binary,
// 50 in flight, without auth and with the JWT plugin (HS256).
func BenchmarkHandshake(b *testing.B) {
	bin := buildBinary(b)
	dir := b.TempDir()
	buildPlugin(b, dir, "auth-jwt")
	b.Setenv("TEST_JWT_SECRET", "s3cr3t")
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "ann", "aud": "chat", "role": "user", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte("s3cr3t"))

	for _, tc := range []struct{ name, cfg, auth string }{
		{"noauth", "server {\n  listen = env(\"LISTEN_ADDR\")\n}\nnamespace \"/\" {}\n", ""},
		{"jwt", jwtConfig(dir), `{"token":"` + tok + `"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv, addr := startServer(b, bin, tc.cfg)
			defer srv.Kill()
			url := "ws://" + addr + "/socket.io/?EIO=4&transport=websocket"
			var next atomic.Int64
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			var failed atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < 50; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						c, _, err := websocket.DefaultDialer.Dial(url, nil)
						if err != nil {
							failed.Add(1)
							continue
						}
						_, _, _ = c.ReadMessage()
						_ = c.WriteMessage(websocket.TextMessage, []byte("40"+tc.auth))
						_, msg, err := c.ReadMessage()
						d := time.Since(t0)
						c.Close()
						if err != nil || !strings.HasPrefix(string(msg), "40") {
							failed.Add(1)
							continue
						}
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d handshakes failed", failed.Load())
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "handshakes/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
