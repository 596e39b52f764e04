package main

import (
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Duplicate stream entries. When a pipeline of XADDs times out, Redis may
// still run it (the kernel buffered it while Redis was stopped or slow), and
// the outgoing queue sends the batch again: the same message can be in the
// stream twice, under two ids. The outcome of a timed-out write is unknown,
// so the retry stays (nothing lost) and readers drop the second copy.
//
// Every entry this plugin adds carries a field mid = "<uid>:<sequence>",
// the sequence a per-process counter assigned once per message when it is
// first encoded and kept on every retry. Readers (the XREAD loop and
// RestoreSession's XRANGE pages) remember, per stream and publisher, the
// highest sequence seen and which of the dedupeWindow sequences below it
// were seen: an entry whose sequence was seen, or is older than the window,
// is a duplicate. Entries without mid (Node's adapter, emitters) are never
// dropped. A publisher's entries come in sequence order but for retries
// (after their originals, before the next batch) and concurrent requests
// (SOCKETS_JOIN etc.), which the window tolerates.

const (
	dedupeWindow  = 4096             // sequences remembered below a publisher's highest
	dedupeIdle    = 10 * time.Minute // a publisher not seen for this long is forgotten
	dedupeMaxPubs = 10000            // (stream, publisher) pairs remembered at most
	dedupePrune   = time.Minute      // how often idle publishers are looked for
)

// midField is the entry field that identifies a message; Node's adapter
// reads only uid, nsp, type and data, and ignores it.
const midField = "mid"

// streamSeq numbers the messages of this process.
var streamSeq atomic.Uint64

// nextMID is a new message id of publisher uid.
func nextMID(uid string) string { return uid + ":" + strconv.FormatUint(streamSeq.Add(1), 10) }

// parseMID splits a mid into publisher and sequence; ok is false for
// anything else (such an entry is never dropped).
func parseMID(s string) (pub string, seq uint64, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil || n == 0 {
		return "", 0, false
	}
	return s[:i], n, true
}

// pubSeen is what a reader remembers of one publisher in one stream.
type pubSeen struct {
	hi   uint64                    // highest sequence seen
	bits [dedupeWindow / 64]uint64 // sequences in (hi-dedupeWindow, hi] seen, by seq % dedupeWindow
	seen time.Time                 // last entry of this publisher
}

func (p *pubSeen) bit(seq uint64) (*uint64, uint64) {
	i := seq % dedupeWindow
	return &p.bits[i/64], 1 << (i % 64)
}

// check reports whether seq was seen already, and marks it seen.
func (p *pubSeen) check(seq uint64) (dup bool) {
	switch {
	case seq > p.hi:
		if seq-p.hi >= dedupeWindow {
			clear(p.bits[:])
		} else {
			for s := p.hi + 1; s < seq; s++ {
				w, b := p.bit(s)
				*w &^= b
			}
		}
		p.hi = seq
	case p.hi-seq >= dedupeWindow:
		return true // older than the window: its first copy came long ago
	default:
		if w, b := p.bit(seq); *w&b != 0 {
			return true
		}
	}
	w, b := p.bit(seq)
	*w |= b
	return false
}

// dedupe is a reader's table: (stream, publisher) → what was seen. A reader
// checks entries in a dedupeTx and commits it when the entries are
// delivered (its cursor moves past them), so that entries read again after
// a refused delivery are not taken for duplicates.
type dedupe struct {
	mu        sync.Mutex
	pubs      map[string]*pubSeen
	lastPrune time.Time
}

func newDedupe() *dedupe { return &dedupe{pubs: map[string]*pubSeen{}} }

// dedupeTx holds the changes of entries not yet delivered.
type dedupeTx struct {
	d      *dedupe
	stream string
	staged map[string]*pubSeen
}

func (d *dedupe) begin(stream string) *dedupeTx {
	return &dedupeTx{d: d, stream: stream, staged: map[string]*pubSeen{}}
}

// dup reports whether the entry with field mid (its fields' "mid", nil
// when absent) is a copy of one seen before.
func (tx *dedupeTx) dup(mid any, now time.Time) bool {
	s, _ := mid.(string)
	if s == "" {
		return false
	}
	pub, seq, ok := parseMID(s)
	if !ok {
		return false
	}
	key := tx.stream + "\x00" + pub
	p := tx.staged[key]
	if p == nil {
		p = &pubSeen{}
		tx.d.mu.Lock()
		if old := tx.d.pubs[key]; old != nil {
			*p = *old
		}
		tx.d.mu.Unlock()
		tx.staged[key] = p
	}
	p.seen = now
	return p.check(seq)
}

// commit applies the staged changes, forgets idle publishers now and then,
// and the least recently seen beyond dedupeMaxPubs.
func (tx *dedupeTx) commit(now time.Time) {
	if len(tx.staged) == 0 {
		return
	}
	d := tx.d
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, p := range tx.staged {
		d.pubs[k] = p
	}
	clear(tx.staged)
	if now.Sub(d.lastPrune) >= dedupePrune {
		d.lastPrune = now
		for k, p := range d.pubs {
			if now.Sub(p.seen) > dedupeIdle {
				delete(d.pubs, k)
			}
		}
	}
	if over := len(d.pubs) - dedupeMaxPubs; over > 0 {
		keys := make([]string, 0, len(d.pubs))
		for k := range d.pubs {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return d.pubs[keys[i]].seen.Before(d.pubs[keys[j]].seen) })
		for _, k := range keys[:over] {
			delete(d.pubs, k)
		}
	}
}

func (d *dedupe) size() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pubs)
}
