package lifecycle

import (
	"context"
	"math/rand/v2"
	"sort"
	"time"
)

// Closer is a connection the drain can close.
type Closer interface {
	Close(reason string)
}

// PacedClose closes conns spread over window: each gets a random moment in
// it, so the clients of a draining instance reconnect elsewhere a few at a
// time rather than all at once. It returns when all are closed, or when ctx
// ends (then what remains is closed at once).
func PacedClose(ctx context.Context, conns []Closer, window time.Duration, reason string) {
	if len(conns) == 0 {
		return
	}
	at := make([]time.Duration, len(conns))
	for i := range at {
		at[i] = time.Duration(rand.Int64N(int64(window) + 1))
	}
	order := make([]int, len(conns))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return at[order[a]] < at[order[b]] })

	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for n, i := range order {
		if wait := at[i] - time.Since(start); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				for _, j := range order[n:] {
					conns[j].Close(reason)
				}
				return
			}
		}
		conns[i].Close(reason)
	}
}
