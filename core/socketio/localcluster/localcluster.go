// Package localcluster wires several instances in one process to each
// other, with the semantics of a cluster adapter that carries requests
// (sdk.Requester): broadcasts reach the other nodes, requests are served by
// them and answered, a node that is down is expected but never answers.
// It exists so that cluster-wide operations can be tested for real, two
// Socket.IO servers in one test, without Redis or a plugin process.
package localcluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

// DefaultTimeout bounds a request whose ClusterRequest.Timeout is 0.
const DefaultTimeout = 5 * time.Second

// maxRoomChanges bounds the room changes a node remembers.
const maxRoomChanges = 10000

// Hub is the cluster: every node joined to it.
type Hub struct {
	// Unsupported makes every Request fail with sdk.ErrUnsupported, like an
	// adapter that carries broadcasts only. Set before use.
	Unsupported bool
	// Timeout replaces DefaultTimeout when set. Set before use.
	Timeout time.Duration

	mu    sync.Mutex
	nodes []*Node
}

// Node is one instance's link to the hub. It has the methods of
// pluginhost.Link that the core uses.
type Node struct {
	hub *Hub

	mu      sync.Mutex // serializes deliver and handle: never concurrent, as the contract says
	deliver func([]sdk.AdapterMessage)
	handle  func(sdk.IncomingRequest)
	down    bool

	// roomsMu guards the room changes apart from mu: deliver and handle
	// may join sockets to rooms, which reports changes.
	roomsMu  sync.Mutex
	changes  []sdk.RoomChange
	snapshot func() []sdk.RoomChange
}

// Join adds a node.
func (h *Hub) Join() *Node {
	n := &Node{hub: h}
	h.mu.Lock()
	h.nodes = append(h.nodes, n)
	h.mu.Unlock()
	return n
}

func (h *Hub) others(self *Node) []*Node {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Node, 0, len(h.nodes))
	for _, n := range h.nodes {
		if n != self {
			out = append(out, n)
		}
	}
	return out
}

// SetDown makes the node deaf and mute (a dead instance the others still
// count), or brings it back.
func (n *Node) SetDown(down bool) {
	n.mu.Lock()
	n.down = down
	n.mu.Unlock()
}

// Send delivers m to every other node that called Receive, at once.
func (n *Node) Send(m sdk.AdapterMessage) bool {
	for _, o := range n.hub.others(n) {
		o.mu.Lock()
		if o.deliver != nil && !o.down {
			o.deliver([]sdk.AdapterMessage{m})
		}
		o.mu.Unlock()
	}
	return true
}

// Receive sets the callback for broadcasts from other nodes.
func (n *Node) Receive(deliver func([]sdk.AdapterMessage)) {
	n.mu.Lock()
	n.deliver = deliver
	n.mu.Unlock()
}

// ServeRequests sets the handler of requests from other nodes. The
// namespaces are not checked: every node serves every namespace.
func (n *Node) ServeRequests(_ []string, handle func(sdk.IncomingRequest)) {
	n.mu.Lock()
	n.handle = handle
	n.mu.Unlock()
}

// RoomChanged records a room change.
func (n *Node) RoomChanged(c sdk.RoomChange) {
	n.roomsMu.Lock()
	if len(n.changes) < maxRoomChanges {
		n.changes = append(n.changes, c)
	}
	n.roomsMu.Unlock()
}

// RoomChanges returns the room changes recorded so far.
func (n *Node) RoomChanges() []sdk.RoomChange {
	n.roomsMu.Lock()
	defer n.roomsMu.Unlock()
	return append([]sdk.RoomChange(nil), n.changes...)
}

// SetRoomSnapshot keeps the snapshot function.
func (n *Node) SetRoomSnapshot(snapshot func() []sdk.RoomChange) {
	n.roomsMu.Lock()
	n.snapshot = snapshot
	n.roomsMu.Unlock()
}

// RoomSnapshot calls the snapshot function (nil when none was set).
func (n *Node) RoomSnapshot() []sdk.RoomChange {
	n.roomsMu.Lock()
	f := n.snapshot
	n.roomsMu.Unlock()
	if f == nil {
		return nil
	}
	return f()
}

// answerQueue takes answers from any goroutine without blocking and hands
// them to the requester's loop.
type answerQueue struct {
	mu     sync.Mutex
	items  []indexed
	signal chan struct{}
	closed bool
}

type indexed struct {
	from int
	resp sdk.ClusterResponse
}

func (q *answerQueue) push(from int, r sdk.ClusterResponse) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, indexed{from, r})
	}
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *answerQueue) take() []indexed {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	q.items = nil
	return out
}

func (q *answerQueue) close() {
	q.mu.Lock()
	q.closed, q.items = true, nil
	q.mu.Unlock()
}

// Request implements sdk.Requester's Request over the hub: every other node
// is expected, down or not; answers come until all are in, the timeout
// passes or ctx ends.
func (n *Node) Request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error) {
	if n.hub.Unsupported {
		return sdk.RequestResult{}, fmt.Errorf("localcluster: %w", sdk.ErrUnsupported)
	}
	others := n.hub.others(n)
	answered := req.Type.Answered(req.WantAck)
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = n.hub.Timeout
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	q := &answerQueue{signal: make(chan struct{}, 1)}
	defer q.close()
	for i, o := range others {
		in := sdk.IncomingRequest{ClusterRequest: req}
		if answered {
			from := i
			in.Respond = func(r sdk.ClusterResponse) { q.push(from, r) }
		}
		o.mu.Lock()
		if o.handle != nil && !o.down {
			o.handle(in)
		}
		o.mu.Unlock()
	}
	if !answered {
		return sdk.RequestResult{}, nil
	}
	res := sdk.RequestResult{Expected: len(others)}
	got := make([]bool, len(others))
	pendingAcks := 0
	for res.Answered < res.Expected || pendingAcks > 0 {
		select {
		case <-q.signal:
		case <-ctx.Done():
			return res, nil // a timeout is an outcome, not an error
		}
		for _, it := range q.take() {
			switch {
			case req.Type == sdk.RequestBroadcastAck && it.resp.Count:
				if got[it.from] {
					continue
				}
				got[it.from] = true
				res.Answered++
				pendingAcks += it.resp.ClientCount
			case req.Type == sdk.RequestBroadcastAck:
				pendingAcks--
			case got[it.from]:
				continue // one answer per server
			default:
				got[it.from] = true
				res.Answered++
			}
			answer(it.resp)
		}
	}
	return res, nil
}
