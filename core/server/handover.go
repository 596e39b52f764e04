package server

import (
	"context"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/sdk"
)

// clusterSwitch is the cluster link of an instance whose adapter plugin
// a reload may replace: it forwards to the link serving, and hands over
// from one link to the next without losing a broadcast from the other
// instances (handover).
type clusterSwitch struct {
	cur atomic.Pointer[pluginhost.Link]

	// mu serializes deliveries from the links (a batch at a time, as one
	// link does) with the handover's steps.
	mu       sync.Mutex
	deliver  func([]sdk.AdapterMessage)
	snapshot func() []sdk.RoomChange
	ho       atomic.Pointer[handover] // nil outside a handover
}

var _ ClusterLink = (*clusterSwitch)(nil)

func newClusterSwitch(l *pluginhost.Link) *clusterSwitch {
	sw := &clusterSwitch{}
	sw.cur.Store(l)
	return sw
}

func (sw *clusterSwitch) Send(m sdk.AdapterMessage) bool {
	if ho := sw.ho.Load(); ho != nil {
		ho.sentOne(m)
	}
	return sw.cur.Load().Send(m)
}

func (sw *clusterSwitch) Request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error) {
	return sw.cur.Load().Request(ctx, req, answer)
}

func (sw *clusterSwitch) RoomChanged(c sdk.RoomChange) { sw.cur.Load().RoomChanged(c) }

func (sw *clusterSwitch) SetRoomSnapshot(snapshot func() []sdk.RoomChange) {
	sw.snapshot = snapshot
	sw.cur.Load().SetRoomSnapshot(snapshot)
}

func (sw *clusterSwitch) Receive(deliver func([]sdk.AdapterMessage)) {
	sw.deliver = deliver
	l := sw.cur.Load()
	l.Receive(sw.from(l))
}

func (sw *clusterSwitch) ServeRequests(namespaces []string, handle func(sdk.IncomingRequest)) {
	sw.cur.Load().ServeRequests(namespaces, handle)
}

// from is what link l delivers through.
func (sw *clusterSwitch) from(l *pluginhost.Link) func([]sdk.AdapterMessage) {
	return func(batch []sdk.AdapterMessage) {
		sw.mu.Lock()
		defer sw.mu.Unlock()
		ho := sw.ho.Load()
		if ho == nil {
			if sw.cur.Load() == l {
				sw.deliver(batch)
			}
			return
		}
		sw.deliver(ho.receive(l, batch))
	}
}

// handover is the state of one adapter handover. Both links are
// subscribed for a while; every broadcast from another instance arrives
// on both, and must be delivered once:
//
//  1. the next link subscribes; what it receives is held (buf);
//  2. once it has received a broadcast the old link delivered too (or
//     after handoverWait without any), it is subscribed: publishing
//     moves to it, the old link is detached and closed (its queue is
//     published first);
//  3. what was held is delivered, less what the old link delivered;
//     from then on the next link delivers, for handoverLinger still less
//     what the old link delivered (the next link may lag behind it).
//
// Broadcasts this instance sends during it are received by the link that
// did not publish them (each plugin drops its own): those are dropped too.
// A broadcast is known by a hash of its bytes; two equal broadcasts from
// other instances within the handover count as two.
type handover struct {
	old, next *pluginhost.Link
	phase     int // 0: holding the next link's; 1: next link live
	buf       []sdk.AdapterMessage
	delivered map[uint64]int // by the old link, not yet seen on the next
	overlap   chan struct{}  // closed when the next link received one the old delivered
	olap      sync.Once

	sentMu sync.Mutex
	sent   map[uint64]int // sent by this instance, not yet seen coming back
}

const (
	handoverWait   = time.Second
	handoverLinger = 2 * time.Second
	handoverBuffer = 100000 // held broadcasts; over it they are delivered at once (duplicates, not losses)
)

func msgKey(m *sdk.AdapterMessage) uint64 {
	h := fnv.New64a()
	sep := []byte{0}
	h.Write([]byte(m.Namespace))
	for _, r := range m.Rooms {
		h.Write(sep)
		h.Write([]byte(r))
	}
	h.Write([]byte{1})
	for _, r := range m.Except {
		h.Write(sep)
		h.Write([]byte(r))
	}
	h.Write([]byte{2})
	h.Write(m.Data)
	for _, a := range m.Attachments {
		h.Write(sep)
		h.Write(a)
	}
	return h.Sum64()
}

func (ho *handover) sentOne(m sdk.AdapterMessage) {
	k := msgKey(&m)
	ho.sentMu.Lock()
	ho.sent[k]++
	ho.sentMu.Unlock()
}

// ownEcho reports (and forgets) a broadcast this instance sent.
func (ho *handover) ownEcho(k uint64) bool {
	ho.sentMu.Lock()
	defer ho.sentMu.Unlock()
	if ho.sent[k] > 0 {
		ho.sent[k]--
		return true
	}
	return false
}

// receive filters a batch from link l (under clusterSwitch.mu) and
// returns what to deliver now.
func (ho *handover) receive(l *pluginhost.Link, batch []sdk.AdapterMessage) []sdk.AdapterMessage {
	out := batch[:0:0]
	for i := range batch {
		m := batch[i]
		k := msgKey(&m)
		if ho.ownEcho(k) {
			continue
		}
		switch {
		case l == ho.old:
			if ho.phase == 0 {
				ho.delivered[k]++
				out = append(out, m)
			} // detached: the next link has it
		case l == ho.next:
			if ho.delivered[k] > 0 {
				ho.delivered[k]--
				ho.olap.Do(func() { close(ho.overlap) })
				continue
			}
			if ho.phase == 0 && len(ho.buf) < handoverBuffer {
				ho.buf = append(ho.buf, m)
				continue
			}
			out = append(out, m)
		}
	}
	return out
}

// handover moves the instance from its adapter link to next: it returns
// once next serves (the old link is closed), at most handoverWait plus
// the old link's close later.
func (sw *clusterSwitch) handover(next *pluginhost.Link, namespaces []string, serve func(sdk.IncomingRequest), log *logrus.Entry) {
	old := sw.cur.Load()
	ho := &handover{old: old, next: next, delivered: map[uint64]int{}, sent: map[uint64]int{}, overlap: make(chan struct{})}
	sw.mu.Lock()
	sw.ho.Store(ho)
	sw.mu.Unlock()
	// What this instance queued on the old link before is published
	// within milliseconds: let it go before the next link listens.
	time.Sleep(20 * time.Millisecond)

	next.SetRoomSnapshot(sw.snapshot)
	next.Receive(sw.from(next))
	start := time.Now()
	select {
	case <-ho.overlap:
	case <-time.After(handoverWait):
	}
	sw.cur.Store(next) // publishes and requests go to the next link
	sw.mu.Lock()
	ho.phase = 1 // the old link is detached
	held := ho.buf
	ho.buf = nil
	sw.mu.Unlock()
	old.Close() // publishes what it still had queued; the next link hears it (own echo)

	sw.mu.Lock()
	out := held[:0]
	for i := range held {
		k := msgKey(&held[i])
		if ho.delivered[k] > 0 {
			ho.delivered[k]--
			continue
		}
		out = append(out, held[i])
	}
	if len(out) > 0 {
		sw.deliver(out)
	}
	sw.mu.Unlock()
	next.ServeRequests(namespaces, serve)
	log.WithFields(logrus.Fields{"held": len(held), "wait_ms": time.Since(start).Milliseconds()}).Info("adapter handed over to the new plugin process")

	go func() {
		time.Sleep(handoverLinger)
		sw.mu.Lock()
		sw.ho.CompareAndSwap(ho, nil) // unless another handover began
		sw.mu.Unlock()
	}()
}
