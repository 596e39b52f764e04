package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// quietLogger is go-redis's logger for the plugin process: while Redis is
// down go-redis logs every failed dial (several a second), and the host
// turns each stderr line into a log entry. It passes one line per interval
// and says how many it held back.
type quietLogger struct {
	out   io.Writer
	every time.Duration

	mu   sync.Mutex
	last time.Time
	held int
}

func (l *quietLogger) Printf(_ context.Context, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.last) < l.every {
		l.held++
		return
	}
	msg := fmt.Sprintf(format, v...)
	if l.held > 0 {
		msg += fmt.Sprintf(" (and %d more go-redis messages in the last %v)", l.held, now.Sub(l.last).Round(time.Second))
	}
	l.last, l.held = now, 0
	fmt.Fprintln(l.out, "redis: "+msg)
}
