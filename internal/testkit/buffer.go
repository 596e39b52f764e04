package testkit

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer behind a lock: a process writes its output to it
// while the test reads it. Max > 0 keeps only the first Max bytes (the
// rest is dropped, not an error), for a chatty process.
type Buffer struct {
	Max int
	mu  sync.Mutex
	b   bytes.Buffer
}

func (w *Buffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.Max > 0 {
		if room := w.Max - w.b.Len(); room < len(p) {
			w.b.Write(p[:max(room, 0)])
			return len(p), nil
		}
	}
	return w.b.Write(p)
}

// String is what was written so far.
func (w *Buffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Lines is String split into lines, without a trailing empty one.
func (w *Buffer) Lines() []string {
	s := strings.TrimSuffix(w.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
