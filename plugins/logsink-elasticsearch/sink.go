package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/socketfleet/socketfleet/sdk"
)

// requestTimeout bounds one bulk request.
const requestTimeout = time.Minute

type options struct {
	index         string
	buffer        int
	bulkActions   int
	flushInterval time.Duration
	retryMax      time.Duration
}

// item is one entry on its way: its index and its document, rendered once.
type item struct {
	seq   uint64
	index string
	doc   json.RawMessage
}

// sink holds the accepted entries (at most o.buffer, waiting or in flight)
// and sends them in bulk requests from one goroutine.
type sink struct {
	client *elastic.Client
	o      options
	log    *log.Logger

	ctx    context.Context // ends with stop
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: "look at the queue now"
	exited chan struct{}

	mu       sync.Mutex
	queue    []item // waiting; retries go back to the front
	inflight int    // entries in the request being sent

	inSeqs   []uint64
	nextSeq  uint64
	flushing int           // Flush calls waiting
	changed  chan struct{} // closed and replaced whenever entries settle
	stopped  bool
	stats    stats
}

type stats struct {
	indexed  uint64 // stored by Elasticsearch
	dropped  uint64 // refused by Elasticsearch for good (4xx other than 408/429)
	retried  uint64 // entries sent again (per-item 429/5xx, failed requests)
	refused  uint64 // entries Write refused: buffer full
	requests uint64 // bulk requests sent
}

func newSink(client *elastic.Client, o options, l *log.Logger) *sink {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sink{client: client, o: o, log: l, ctx: ctx, cancel: cancel,
		kick: make(chan struct{}, 1), exited: make(chan struct{}), changed: make(chan struct{})}
	go s.run()
	return s
}

// stop ends the loop; what it still holds is lost (Configure replaced it).
func (s *sink) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.cancel()
	<-s.exited
}

func (s *sink) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// write renders and queues the batch, or refuses all of it when it would
// take the plugin past its buffer. It never waits for Elasticsearch.
func (s *sink) write(batch []sdk.LogEntry) error {
	items := make([]item, len(batch))
	for i, e := range batch {
		t := e.Time
		if t.IsZero() {
			t = time.Now()
		}
		items[i] = item{index: indexName(s.o.index, t), doc: e.Document(t)}
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return errors.New("log sink stopped")
	}
	if held := len(s.queue) + s.inflight; held+len(items) > s.o.buffer {
		s.stats.refused += uint64(len(items))
		s.mu.Unlock()
		return fmt.Errorf("elasticsearch log sink: buffer full (%d entries held, buffer = %d): batch of %d refused", held, s.o.buffer, len(items))
	}
	for i := range items {
		items[i].seq = s.nextSeq
		s.nextSeq++
	}
	s.queue = append(s.queue, items...)
	full := len(s.queue) >= s.o.bulkActions
	s.mu.Unlock()
	if full {
		s.poke()
	}
	return nil
}

// flush waits until every entry accepted before the call is indexed or
// dropped (and counted), or ctx ends.
func (s *sink) flush(ctx context.Context) error {
	s.mu.Lock()
	target := s.nextSeq
	s.flushing++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.flushing--
		s.mu.Unlock()
	}()
	s.poke()
	for {
		s.mu.Lock()
		pending := 0
		for _, it := range s.queue {
			if it.seq < target {
				pending++
			}
		}
		for _, seq := range s.inSeqs {
			if seq < target {
				pending++
			}
		}
		ch := s.changed
		s.mu.Unlock()
		if pending == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("elasticsearch log sink: flush: %d entries not yet indexed: %w", pending, ctx.Err())
		}
	}
}

func (s *sink) run() {
	defer close(s.exited)
	tick := time.NewTicker(s.o.flushInterval)
	defer tick.Stop()
	var backoff time.Duration
	for {
		s.mu.Lock()
		urgent := len(s.queue) >= s.o.bulkActions || (len(s.queue) > 0 && s.flushing > 0)
		s.mu.Unlock()
		if !urgent {
			select {
			case <-s.ctx.Done():
				return
			case <-s.kick:
				continue
			case <-tick.C:
			}
		}
		s.mu.Lock()
		n := min(len(s.queue), s.o.bulkActions)
		if n == 0 {
			s.mu.Unlock()
			continue
		}
		batch := make([]item, n)
		copy(batch, s.queue)
		s.queue = s.queue[n:]
		s.inflight = n
		s.inSeqs = s.inSeqs[:0]
		for _, it := range batch {
			s.inSeqs = append(s.inSeqs, it.seq)
		}
		s.stats.requests++
		s.mu.Unlock()

		retry, why := s.send(batch)

		s.mu.Lock()
		if len(retry) > 0 {
			s.queue = append(retry, s.queue...)
			s.stats.retried += uint64(len(retry))
		}
		s.inflight = 0
		s.inSeqs = s.inSeqs[:0]
		close(s.changed)
		s.changed = make(chan struct{})
		held := len(s.queue)
		s.mu.Unlock()

		if len(retry) == 0 {
			backoff = 0
			continue
		}
		backoff = nextBackoff(backoff, s.o.retryMax)
		s.log.Printf("elasticsearch log sink: %d of %d entries to retry in %s (%s); %d entries held", len(retry), n, backoff.Round(time.Millisecond), why, held)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// nextBackoff doubles from 100 ms (with jitter) up to max.
func nextBackoff(prev, max time.Duration) time.Duration {
	d := 2 * prev
	if d == 0 {
		d = 100 * time.Millisecond
	}
	d = d*3/4 + rand.N(d/2+1)
	return min(d, max)
}

// send makes one bulk request and returns the entries to send again, with
// why. Entries Elasticsearch refuses for good are dropped and counted here.
func (s *sink) send(batch []item) (retry []item, why string) {
	bulk := s.client.Bulk()
	for _, it := range batch {
		bulk.Add(elastic.NewBulkIndexRequest().Index(it.index).Doc(it.doc))
	}
	ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
	defer cancel()
	res, err := bulk.Do(ctx)
	if err != nil {
		if retryableRequestError(err) {
			return batch, err.Error()
		}
		s.drop(len(batch), "bulk request refused: "+err.Error())
		return nil, ""
	}
	var indexed, dropped int
	var firstDrop, firstRetry string
	for i, it := range batch {
		var r *elastic.BulkResponseItem
		if i < len(res.Items) {
			for _, v := range res.Items[i] {
				r = v
			}
		}
		switch {
		case r == nil:
			retry = append(retry, it)
			if firstRetry == "" {
				firstRetry = "no result for the entry in the bulk response"
			}
		case r.Status >= 200 && r.Status < 300:
			indexed++
		case retryableStatus(r.Status):
			retry = append(retry, it)
			if firstRetry == "" {
				firstRetry = itemError(r)
			}
		default:
			dropped++
			if firstDrop == "" {
				firstDrop = itemError(r)
			}
		}
	}
	s.mu.Lock()
	s.stats.indexed += uint64(indexed)
	s.mu.Unlock()
	if dropped > 0 {
		s.drop(dropped, firstDrop)
	}
	return retry, firstRetry
}

// drop counts entries lost for good and says so on stderr.
func (s *sink) drop(n int, why string) {
	s.mu.Lock()
	s.stats.dropped += uint64(n)
	total := s.stats.dropped
	s.mu.Unlock()
	s.log.Printf("elasticsearch log sink: dropped %d entries (%s); %d dropped in total", n, why, total)
}

func (s *sink) snapshot() stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func retryableStatus(code int) bool {
	return code == 408 || code == 429 || code >= 500
}

// retryableRequestError: 408, 429, 5xx and anything that is not an answer
// from Elasticsearch (connection refused, timeouts, a broken response).
func retryableRequestError(err error) bool {
	var e *elastic.Error
	if errors.As(err, &e) {
		return retryableStatus(e.Status)
	}
	return true
}

func itemError(r *elastic.BulkResponseItem) string {
	msg := "status " + strconv.Itoa(r.Status)
	if r.Error != nil {
		msg += " " + r.Error.Type
		if r.Error.Reason != "" {
			msg += ": " + r.Error.Reason
		}
	}
	return msg
}

// indexName expands %Y, %m, %d (t's UTC date) and %% in pattern.
func indexName(pattern string, t time.Time) string {
	if !strings.Contains(pattern, "%") {
		return pattern
	}
	t = t.UTC()
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '%' || i+1 == len(pattern) {
			b.WriteByte(c)
			continue
		}
		i++
		switch pattern[i] {
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(pattern[i])
		}
	}
	return b.String()
}
