// Cluster requests: what an adapter carries besides broadcasts. One instance
// asks every other instance something (fetch sockets, all rooms, make
// sockets join/leave/disconnect, a server-side emit, a broadcast whose
// clients acknowledge) and gathers their answers. The adapter knows the
// wire and how many answers to expect; the core knows the sockets.

package sdk

import (
	"context"
	"errors"
	"time"
)

// RequestType is what a cluster request asks of the other instances.
type RequestType int32

// Request types. "Selected sockets" are those of Namespace in any of Rooms
// (all when Rooms is empty) and in none of Except.
const (
	// RequestFetchSockets: each server answers once, with Sockets set to its
	// selected sockets.
	RequestFetchSockets RequestType = 1
	// RequestAllRooms: each server answers once, with Rooms set to every
	// room it holds in Namespace (socket-id rooms included, as Node does).
	RequestAllRooms RequestType = 2
	// RequestSocketsJoin: the selected sockets join Targets. No answer.
	RequestSocketsJoin RequestType = 3
	// RequestSocketsLeave: the selected sockets leave Targets. No answer.
	RequestSocketsLeave RequestType = 4
	// RequestDisconnectSockets: the selected sockets are disconnected (with
	// Close, their whole connection). No answer.
	RequestDisconnectSockets RequestType = 5
	// RequestServerSideEmit: the event in Data goes to the servers'
	// server-side handlers, not to clients. With WantAck each server answers
	// once, with Ack set to its acknowledgement argument.
	RequestServerSideEmit RequestType = 6
	// RequestBroadcastAck: Data is broadcast to the selected sockets, which
	// are asked to acknowledge. Each server answers first with Count set and
	// ClientCount = how many clients it sent to, then once per client ack
	// (Ack set), until Timeout.
	RequestBroadcastAck RequestType = 7
)

// String names the request type for logs.
func (t RequestType) String() string {
	switch t {
	case RequestFetchSockets:
		return "fetch_sockets"
	case RequestAllRooms:
		return "all_rooms"
	case RequestSocketsJoin:
		return "sockets_join"
	case RequestSocketsLeave:
		return "sockets_leave"
	case RequestDisconnectSockets:
		return "disconnect_sockets"
	case RequestServerSideEmit:
		return "server_side_emit"
	case RequestBroadcastAck:
		return "broadcast_ack"
	}
	return "unknown"
}

// Answered reports whether servers answer requests of this type.
func (t RequestType) Answered(wantAck bool) bool {
	switch t {
	case RequestFetchSockets, RequestAllRooms, RequestBroadcastAck:
		return true
	case RequestServerSideEmit:
		return wantAck
	}
	return false
}

// ClusterRequest is one request to every other instance.
type ClusterRequest struct {
	Type      RequestType
	Namespace string
	Rooms     []string // selection; empty = every socket of Namespace
	Except    []string
	Targets   []string // SocketsJoin/SocketsLeave: the rooms to join or leave
	Close     bool     // DisconnectSockets: close the whole connection
	// Data is the event's JSON array ["event", ...args], placeholders
	// included (ServerSideEmit, BroadcastAck).
	Data        []byte
	Attachments [][]byte
	WantAck     bool // ServerSideEmit: the sender waits for one answer per server
	// Timeout bounds the wait for answers: the client ack timeout of a
	// BroadcastAck; 0 elsewhere means the adapter's own request timeout
	// (the host gives such a request 30 s at most).
	Timeout time.Duration
}

// ClusterResponse is one answer from one server (for BroadcastAck, one of
// several).
type ClusterResponse struct {
	Sockets []RemoteSocket // FetchSockets
	Rooms   []string       // AllRooms
	// Count marks the first answer to a BroadcastAck: ClientCount clients
	// were sent the broadcast and will each answer with an Ack.
	Count       bool
	ClientCount int
	// Ack is one acknowledgement argument as JSON (placeholders included)
	// for ServerSideEmit and BroadcastAck; "null" when there was none.
	Ack            []byte
	AckAttachments [][]byte
}

// RemoteSocket describes a socket of another instance, as fetchSockets does.
type RemoteSocket struct {
	ID    string
	Rooms []string // the rooms it is in, its own id included
	// Data is the socket's data as JSON ("null" when none); Handshake the
	// handshake details as a JSON object (Node's shape: headers, time,
	// address, xdomain, secure, issued, url, query, auth).
	Data      []byte
	Handshake []byte
}

// RequestResult says how a request ended.
type RequestResult struct {
	// Expected is how many servers were expected to answer (the others in
	// the cluster, by the adapter's count); Answered how many did before the
	// deadline. For requests that get no answer both are 0.
	Expected int
	Answered int
}

// Requester is implemented by adapters that carry cluster requests besides
// broadcasts. Without it, the core's cluster-wide operations reach this
// instance's sockets only.
type Requester interface {
	// Request sends req to the other instances and calls answer with each
	// answer as it arrives (never concurrently), until every expected answer
	// is in, the timeout passes, or ctx ends. A server that dies does not
	// make it hang: it returns with Answered < Expected.
	Request(ctx context.Context, req ClusterRequest, answer func(ClusterResponse)) (RequestResult, error)
	// ServeRequests runs until ctx ends, calling handle with each request
	// that another instance (or an emitter) sent to one of namespaces (the
	// namespaces this instance serves; the adapter subscribes to their
	// request channels, which also makes it count as a server of each),
	// never concurrently. handle must not block; it answers through
	// in.Respond, which may be called later and from any goroutine, as many
	// times as the type answers.
	ServeRequests(ctx context.Context, namespaces []string, handle func(in IncomingRequest)) error
}

// IncomingRequest is a request from another instance.
type IncomingRequest struct {
	ClusterRequest
	// Respond sends one answer back to the requester. It never blocks; after
	// the request's deadline answers are dropped. It is nil for requests
	// that get no answer.
	Respond func(ClusterResponse)
}

// Status is what a plugin reports about itself beyond being up.
type Status struct {
	// Degraded, when not empty, says why the plugin cannot do its job fully
	// right now (e.g. "redis: connection refused"). The core reports it on
	// /ready.
	Degraded string
	// Metrics are the plugin's own metrics (e.g. Redis errors and command
	// latency); the core adds them to its snapshot with its labels.
	Metrics MetricsSnapshot
}

// StatusReporter is implemented by plugins (of any kind) that report a
// Status. The core asks about once a second and at each metrics scrape.
type StatusReporter interface {
	Status(ctx context.Context) (Status, error)
}

// RoomChange says that this instance now holds a room (its first member
// joined) or no longer does (its last member left).
type RoomChange struct {
	Namespace string
	Room      string
	Created   bool // false = deleted
}

// RoomObserver is implemented by adapters that want to know which rooms
// this instance holds, e.g. to subscribe to the channels of those rooms
// only. The core calls RoomsChanged with changes coalesced over a few
// milliseconds, in order; after the plugin restarts it first sends every
// room it holds as created. Socket-id rooms are not reported.
type RoomObserver interface {
	RoomsChanged(ctx context.Context, changes []RoomChange) error
}

// ErrUnsupported is returned by the host for cluster requests when the
// adapter plugin does not implement Requester (or RoomObserver).
var ErrUnsupported = errors.New("not supported by the adapter plugin")
