package recovery

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socketfleet/socketfleet/core/engineio"
	"github.com/socketfleet/socketfleet/core/rooms"
)

// Entry is one broadcast as it was delivered: its frames (the offset
// already appended), where it went, and its offset.
type Entry struct {
	Opts   rooms.Options
	Msgs   []*engineio.Message
	Offset Offset
	at     int64 // unix nanos
	size   int
}

// matches reports whether a socket in sessionRooms was a recipient.
func (e *Entry) matches(sessionRooms []string) bool {
	in := len(e.Opts.Rooms) == 0
	for _, r := range e.Opts.Rooms {
		if contains(sessionRooms, r) {
			in = true
			break
		}
	}
	if !in {
		return false
	}
	for _, r := range e.Opts.Except {
		if contains(sessionRooms, r) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Journal is a bounded ring of the broadcasts an instance delivered in one
// namespace, in
// delivery order, which is offset order. It keeps an entry for at most
// MaxAge, and drops the oldest early when it holds more than MaxEntries or
// MaxBytes (counted in Evicted). Frames are shared with the broadcast, not
// copied.
type Journal struct {
	MaxAge     time.Duration
	MaxEntries int
	MaxBytes   int64

	mu      sync.Mutex
	ring    []Entry
	head, n int
	bytes   int64
	seq     uint64 // the last offset Assign gave
	last    Offset // the newest offset appended
	hasLast bool

	// Evicted counts entries dropped by the caps before MaxAge.
	Evicted atomic.Int64
}

// NewJournal returns an empty journal.
func NewJournal(maxAge time.Duration, maxEntries int, maxBytes int64) *Journal {
	return &Journal{MaxAge: maxAge, MaxEntries: maxEntries, MaxBytes: maxBytes, ring: make([]Entry, 64)}
}

// Assign gives the next offset of this journal's own sequence ("0-<n>":
// a single instance, whose offsets nobody else makes).
func (j *Journal) Assign() (string, Offset) {
	j.mu.Lock()
	j.seq++
	s := j.seq
	j.mu.Unlock()
	return "0-" + strconv.FormatUint(s, 10), Offset{Lo: s}
}

// Newest returns the newest offset appended ("" before any): what a
// session is stamped with when its socket connects.
func (j *Journal) Newest() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.hasLast {
		return ""
	}
	return strconv.FormatUint(j.last.Hi, 10) + "-" + strconv.FormatUint(j.last.Lo, 10)
}

// Append records a delivered broadcast. Entries must come in offset order:
// one that is not newer than the newest appended is refused (false), as a
// broadcast delivered already (an adapter that restarted reads on from an
// older position).
func (j *Journal) Append(opts rooms.Options, msgs []*engineio.Message, off Offset) bool {
	size := 64
	for _, m := range msgs {
		size += len(m.Frame) + 32
	}
	now := time.Now().UnixNano()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.hasLast && !j.last.Less(off) {
		return false
	}
	j.last, j.hasLast = off, true
	j.expireLocked(now)
	for j.n > 0 && (j.n >= j.MaxEntries || j.bytes+int64(size) > j.MaxBytes) {
		j.dropLocked()
		j.Evicted.Add(1)
	}
	if j.n == len(j.ring) {
		j.growLocked()
	}
	j.ring[(j.head+j.n)%len(j.ring)] = Entry{Opts: opts, Msgs: msgs, Offset: off, at: now, size: size}
	j.n++
	j.bytes += int64(size)
	return true
}

func (j *Journal) growLocked() {
	ring := make([]Entry, min(2*len(j.ring), max(j.MaxEntries, 64)))
	if len(ring) <= len(j.ring) {
		ring = make([]Entry, 2*len(j.ring))
	}
	for i := 0; i < j.n; i++ {
		ring[i] = j.ring[(j.head+i)%len(j.ring)]
	}
	j.ring, j.head = ring, 0
}

func (j *Journal) dropLocked() {
	e := &j.ring[j.head]
	j.bytes -= int64(e.size)
	*e = Entry{}
	j.head = (j.head + 1) % len(j.ring)
	j.n--
}

func (j *Journal) expireLocked(now int64) {
	for j.n > 0 && now-j.ring[j.head].at > int64(j.MaxAge) {
		j.dropLocked()
	}
}

// Since returns the entries after offset that a socket in sessionRooms
// received, oldest first. complete is false when the journal
// may no longer hold everything after offset (the entry right after it
// was dropped), or when offset is newer than anything appended here and
// future is false; the entries it still holds are returned either way.
func (j *Journal) Since(sessionRooms []string, after Offset, future bool) (out []Entry, complete bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.expireLocked(time.Now().UnixNano())
	complete = j.coversLocked(after, future)
	for i := 0; i < j.n; i++ {
		e := &j.ring[(j.head+i)%len(j.ring)]
		if !after.Less(e.Offset) || !e.matches(sessionRooms) {
			continue
		}
		out = append(out, *e)
	}
	return out, complete
}

// Covers reports whether the journal holds everything after offset (and
// offset is not newer than anything appended).
func (j *Journal) Covers(after Offset) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.expireLocked(time.Now().UnixNano())
	return j.coversLocked(after, false)
}

func (j *Journal) coversLocked(after Offset, future bool) bool {
	switch {
	case j.hasLast && j.last.Less(after) && !future:
		return false
	case j.n > 0 && after.next().Less(j.ring[j.head].Offset):
		return false // the entry right after offset may be gone
	case j.n == 0 && j.hasLast && after.Less(j.last):
		return false
	}
	return true
}

// Stats returns the entries and bytes held.
func (j *Journal) Stats() (entries int, bytes int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.n, j.bytes
}
