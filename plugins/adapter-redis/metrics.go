package main

import (
	"context"
	"errors"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/sdk"
)

// metrics are the plugin's counters and its health, shared by the shell and
// whichever mode runs. It is also a go-redis Hook: add it to every client
// (rdb.AddHook(m)) to time each command and pipeline and count their
// errors. A mode other than classic gets it through an optional method
// `attach(*runtime)` (see plugin.go).
//
// Everything on the command path is an atomic on a fixed array: no
// allocation, no lock per command.
type metrics struct {
	cmds [len(commandLabels)]cmdStats

	published     atomic.Uint64 // messages Redis took
	droppedFull   atomic.Uint64 // outgoing messages refused: queue full
	droppedClose  atomic.Uint64 // outgoing messages still queued when the plugin closed
	invalid       atomic.Uint64 // outgoing messages that could not be encoded
	queued        atomic.Int64  // outgoing messages waiting (in flight included)
	respFull      atomic.Uint64 // request answers dropped: response queue full
	respLate      atomic.Uint64 // request answers dropped: after the request's deadline
	respInvalid   atomic.Uint64 // request answers dropped: could not be encoded
	reqDropped    atomic.Uint64 // incoming requests dropped: the core's handler queue full
	answerDropped atomic.Uint64 // answers to our requests dropped: more than maxAnswers
	dupRead       atomic.Uint64 // streams mode: duplicate entries the XREAD loop dropped
	dupRestore    atomic.Uint64 // streams mode: duplicate entries RestoreSession dropped

	mu   sync.Mutex
	down map[string]string // what is failing ("publish", "subscription", ...) → why
}

func newMetrics() *metrics { return &metrics{down: map[string]string{}} }

// commandLabels are the values of the `command` label. A fixed set keeps
// the hook allocation-free and the label cardinality bounded; anything
// else is "other".
var commandLabels = [...]string{"pipeline", "dial", "publish", "spublish", "pubsub", "ping", "hello", "client", "cluster", "xadd", "xread", "xrange", "other"}

const (
	cmdPipeline = iota
	cmdDial
	cmdOther = len(commandLabels) - 1
)

func commandIndex(name string) int {
	switch name {
	case "publish":
		return 2
	case "spublish":
		return 3
	case "pubsub":
		return 4
	case "ping":
		return 5
	case "hello":
		return 6
	case "client":
		return 7
	case "cluster":
		return 8
	case "xadd": // the streams mode's requests (its broadcasts are pipelines)
		return 9
	case "xread": // blocks up to block_time when the stream is quiet
		return 10
	case "xrange", "xrevrange":
		return 11
	}
	return cmdOther
}

// durationBounds are the histogram's upper bounds: 100 µs to 1 s.
var durationBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second,
}

type cmdStats struct {
	buckets [len(durationBounds) + 1]atomic.Uint64 // not cumulative; the last is +Inf
	sumNs   atomic.Uint64
	errors  atomic.Uint64
}

// handshakeRefusal is an error reply to go-redis's own connection set-up
// (HELLO, CLIENT SETINFO, CLIENT MAINT_NOTIFICATIONS), which it tolerates:
// an older Redis does not know these commands. Not worth an error count.
func handshakeRefusal(err error, cmds ...redis.Cmder) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	for _, c := range cmds {
		if n := c.Name(); n != "client" && n != "hello" {
			return false
		}
	}
	return true
}

func (m *metrics) observe(i int, d time.Duration, err error) {
	s := &m.cmds[i]
	b := len(durationBounds)
	for j, ub := range durationBounds {
		if d <= ub {
			b = j
			break
		}
	}
	s.buckets[b].Add(1)
	s.sumNs.Add(uint64(d))
	if err != nil && !errors.Is(err, redis.Nil) {
		s.errors.Add(1)
	}
}

var _ redis.Hook = (*metrics)(nil)

func (m *metrics) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		start := time.Now()
		c, err := next(ctx, network, addr)
		m.observe(cmdDial, time.Since(start), err)
		return c, err
	}
}

func (m *metrics) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		counted := err
		if err != nil && handshakeRefusal(err, cmd) {
			counted = nil
		}
		m.observe(commandIndex(cmd.Name()), time.Since(start), counted)
		return err
	}
}

func (m *metrics) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		counted := err
		if err != nil && handshakeRefusal(err, cmds...) {
			counted = nil
		}
		m.observe(cmdPipeline, time.Since(start), counted)
		return err
	}
}

// setDown records that what is failing and why; err nil clears it.
func (m *metrics) setDown(what string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		delete(m.down, what)
		return
	}
	m.down[what] = err.Error()
}

// degraded is Status.Degraded: every failing part, sorted, or "".
func (m *metrics) degraded() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.down) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m.down))
	for what, why := range m.down {
		parts = append(parts, "redis: "+what+": "+why)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func counter(name, help string, v uint64, labels ...sdk.MetricLabel) sdk.MetricSample {
	return sdk.MetricSample{Name: name, Help: help, Labels: labels, Value: float64(v)}
}

// snapshot renders the metrics with Prometheus names; commands never used
// are left out.
func (m *metrics) snapshot() sdk.MetricsSnapshot {
	var s sdk.MetricsSnapshot
	const (
		errHelp = "Redis commands (and dials, and pipelines as one) that failed, by command."
		durHelp = "Time taken by Redis commands, pipelines (one observation each) and dials, by command."
	)
	bounds := make([]float64, len(durationBounds))
	for i, b := range durationBounds {
		bounds[i] = b.Seconds()
	}
	for i := range m.cmds {
		c := &m.cmds[i]
		var total uint64
		counts := make([]uint64, len(durationBounds))
		for j := range c.buckets {
			total += c.buckets[j].Load()
			if j < len(counts) {
				counts[j] = total
			}
		}
		errs := c.errors.Load()
		if total == 0 && errs == 0 {
			continue
		}
		label := []sdk.MetricLabel{{Name: "command", Value: commandLabels[i]}}
		s.Counters = append(s.Counters, counter("redis_errors_total", errHelp, errs, label...))
		s.Histograms = append(s.Histograms, sdk.MetricHistogram{
			Name: "redis_command_duration_seconds", Help: durHelp, Labels: label,
			Bounds: bounds, Counts: counts, Count: total, Sum: time.Duration(c.sumNs.Load()).Seconds(),
		})
	}
	const dupHelp = "Streams mode: stream entries dropped as copies of one already read (a write retried after a timeout that Redis ran after all), by reader."
	const dropHelp = "Outgoing broadcasts dropped: the publish queue was full, or still held messages when the plugin closed."
	s.Counters = append(s.Counters,
		counter("redis_published_messages_total", "Broadcasts Redis accepted (PUBLISH).", m.published.Load()),
		counter("redis_publish_dropped_total", dropHelp, m.droppedFull.Load(), sdk.MetricLabel{Name: "reason", Value: "queue_full"}),
		counter("redis_publish_dropped_total", dropHelp, m.droppedClose.Load(), sdk.MetricLabel{Name: "reason", Value: "closing"}),
		counter("redis_publish_invalid_total", "Outgoing broadcasts refused because they could not be encoded.", m.invalid.Load()),
		counter("redis_request_answers_dropped_total", "Answers this instance gave to other instances' requests that were dropped.",
			m.respFull.Load(), sdk.MetricLabel{Name: "reason", Value: "queue_full"}),
		counter("redis_request_answers_dropped_total", "Answers this instance gave to other instances' requests that were dropped.",
			m.respLate.Load(), sdk.MetricLabel{Name: "reason", Value: "late"}),
		counter("redis_request_answers_dropped_total", "Answers this instance gave to other instances' requests that were dropped.",
			m.respInvalid.Load(), sdk.MetricLabel{Name: "reason", Value: "invalid"}),
		counter("redis_request_answers_overflow_total", "Answers to this instance's own requests dropped: more than 65536 waiting for the caller.", m.answerDropped.Load()),
		counter("redis_requests_dropped_total", "Requests from other instances dropped because the handler queue was full.", m.reqDropped.Load()),
		counter("redis_stream_duplicates_dropped_total", dupHelp, m.dupRead.Load(), sdk.MetricLabel{Name: "reader", Value: "xread"}),
		counter("redis_stream_duplicates_dropped_total", dupHelp, m.dupRestore.Load(), sdk.MetricLabel{Name: "reader", Value: "restore"}),
	)
	s.Gauges = append(s.Gauges, sdk.MetricSample{Name: "redis_publish_queue_messages",
		Help: "Outgoing broadcasts waiting to be published (the batch in flight included).", Value: float64(m.queued.Load())})
	return s
}

// redisCause is what to say about a Redis failure: the network error when
// there is one ("dial tcp 127.0.0.1:6379: connect: connection refused"),
// without the wrapping of the layers above.
func redisCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	return err
}
