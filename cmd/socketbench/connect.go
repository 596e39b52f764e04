package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// connectAll opens n clients, at most c.inFlight handshakes at a time, to
// urlOf(i). after (optional) runs on each new client in its worker (to join
// a room, start its reader); a client whose after fails counts as failed.
// Handshake latencies go to h. It returns the clients (nil where failed),
// the failure count and the first error.
func connectAll(ctx context.Context, c *config, n int, urlOf func(int) string, auth *tokenPool,
	after func(i int, cl *client) error, h *hist) ([]*client, int, string) {
	clients := make([]*client, n)
	var (
		next     atomic.Int64
		failed   atomic.Int64
		errOnce  sync.Once
		firstErr string
		wg       sync.WaitGroup
	)
	workers := min(c.inFlight, n)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				dctx, cancel := context.WithTimeout(ctx, c.timeout)
				cl, err := dial(dctx, dialOptions{baseURL: urlOf(i), path: c.path, transport: c.transport, auth: auth.next(), local: c.local})
				if err == nil && h != nil {
					h.record(time.Since(t0))
				}
				if err == nil && after != nil {
					if err = after(i, cl); err != nil {
						cl.close()
					}
				}
				cancel()
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err.Error() })
					continue
				}
				clients[i] = cl
			}
		}()
	}
	wg.Wait()
	return clients, int(failed.Load()), firstErr
}

// tokenPool hands out CONNECT payloads: nil without a JWT secret, else
// {"token":"<jwt>"} from a few pre-signed tokens (signing is not what is
// measured).
type tokenPool struct {
	payloads [][]byte
	i        atomic.Uint64
}

func newTokenPool(secret, aud string) (*tokenPool, error) {
	p := &tokenPool{}
	if secret == "" {
		return p, nil
	}
	now := time.Now()
	for i := 0; i < 64; i++ {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": fmt.Sprintf("bench-%d", i),
			"aud": aud,
			"iat": now.Unix(),
			"exp": now.Add(2 * time.Hour).Unix(),
		}).SignedString([]byte(secret))
		if err != nil {
			return nil, err
		}
		p.payloads = append(p.payloads, []byte(`{"token":"`+tok+`"}`))
	}
	return p, nil
}

func (p *tokenPool) next() []byte {
	if p == nil || len(p.payloads) == 0 {
		return nil
	}
	return p.payloads[p.i.Add(1)%uint64(len(p.payloads))]
}

// readUntilClosed consumes a client's packets (answering pings) until the
// connection ends, then calls gone unless the end was ours.
func readUntilClosed(cl *client, gone func()) {
	for {
		if _, err := cl.next(); err != nil {
			select {
			case <-cl.closed:
			default:
				gone()
			}
			return
		}
	}
}

type connectResult struct {
	common
	Clients     int `json:"clients"`
	Concurrency int `json:"concurrency"`
	Connected   int `json:"connected"`
	Failed      int `json:"failed"`
	// Connected clients per second while they were connecting.
	ConnectsPerS float64 `json:"connects_per_s"`
	LatP50Ms     float64 `json:"lat_p50_ms"`
	LatP90Ms     float64 `json:"lat_p90_ms"`
	LatP99Ms     float64 `json:"lat_p99_ms"`
	LatMaxMs     float64 `json:"lat_max_ms"`
	// Clients still connected after --hold.
	Alive int `json:"alive"`
	// Server RSS (--server-pid and descendants) before connecting and after hold.
	RSSBefore       int64   `json:"rss_before_bytes"`
	RSSAfter        int64   `json:"rss_after_bytes"`
	RSSPerConnBytes float64 `json:"rss_per_conn_bytes"`
	// CPU per connection while connecting.
	ServerCPUUsPerConn float64 `json:"server_cpu_us_per_conn"`
	GenCPUUsPerConn    float64 `json:"gen_cpu_us_per_conn"`
}

func runConnect(ctx context.Context, c *config) (any, string, error) {
	r := connectResult{common: newCommon("connect", c), Clients: c.n, Concurrency: c.inFlight}
	auth, err := newTokenPool(c.jwtSecret, c.jwtAud)
	if err != nil {
		return nil, "", err
	}
	if len(c.serverPIDs) > 0 {
		if r.RSSBefore, err = treeRSS(c.serverPIDs); err != nil {
			return nil, "", err
		}
	}
	var alive atomic.Int64
	var h hist
	m := startMeters(c)
	clients, failed, firstErr := connectAll(ctx, c, c.n, func(i int) string { return c.urls[i%len(c.urls)] }, auth,
		func(_ int, cl *client) error {
			alive.Add(1)
			go readUntilClosed(cl, func() { alive.Add(-1) })
			return nil
		}, &h)
	m.stop(&r.common)
	defer func() {
		for _, cl := range clients {
			if cl != nil {
				cl.close()
			}
		}
	}()
	r.Connected, r.Failed, r.FirstError = c.n-failed, failed, firstErr
	if r.WindowS > 0 {
		r.ConnectsPerS = round(float64(r.Connected)/r.WindowS, 1)
	}
	st := h.stats()
	r.LatP50Ms, r.LatP90Ms, r.LatP99Ms, r.LatMaxMs = round(st.P50, 3), round(st.P90, 3), round(st.P99, 3), round(st.Max, 3)
	r.ServerCPUUsPerConn = perUnit(r.ServerCPUS, uint64(r.Connected))
	r.GenCPUUsPerConn = perUnit(r.GenCPUS, uint64(r.Connected))

	select {
	case <-time.After(c.hold):
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	r.Alive = int(alive.Load())
	if len(c.serverPIDs) > 0 {
		if r.RSSAfter, err = treeRSS(c.serverPIDs); err != nil {
			return nil, "", err
		}
		if r.Alive > 0 {
			r.RSSPerConnBytes = round(float64(r.RSSAfter-r.RSSBefore)/float64(r.Alive), 0)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "connect %s (%s, %s): %d clients, %d in flight\n", c.name, c.label, c.transport, c.n, c.inFlight)
	fmt.Fprintf(&b, "  connected   %d in %.2f s = %.0f/s, %d failed%s\n", r.Connected, r.WindowS, r.ConnectsPerS, r.Failed, errNote(r.FirstError))
	fmt.Fprintf(&b, "  handshake   p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", r.LatP50Ms, r.LatP90Ms, r.LatP99Ms, r.LatMaxMs)
	fmt.Fprintf(&b, "  after hold  %d alive after %s\n", r.Alive, c.hold)
	if len(c.serverPIDs) > 0 {
		fmt.Fprintf(&b, "  server RSS  %.1f MB -> %.1f MB = %.0f B per connection\n", float64(r.RSSBefore)/1e6, float64(r.RSSAfter)/1e6, r.RSSPerConnBytes)
		fmt.Fprintf(&b, "  server CPU  %.2f s (%.0f%% of a core) = %.1f µs per connection\n", r.ServerCPUS, r.ServerCPUPct, r.ServerCPUUsPerConn)
	}
	fmt.Fprintf(&b, "  generator   %.2f s CPU (%.0f%% of a core) = %.1f µs per connection\n", r.GenCPUS, r.GenCPUPct, r.GenCPUUsPerConn)
	return r, b.String(), nil
}

func errNote(e string) string {
	if e == "" {
		return ""
	}
	return " (first: " + e + ")"
}
