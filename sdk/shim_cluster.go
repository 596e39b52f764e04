package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/socketfleet/socketfleet/sdk/internal/pluginpb"
)

// Cluster requests across the boundary. Requests are rare (an API call, an
// admin action), so each Request is one call; requests from other
// instances and the host's answers share one long-lived stream each way.

// answerQueue bounds the answers the host has not yet sent on the
// ServeRequests stream; beyond it answers are dropped (the requester then
// sees that server as not having answered).
const answerQueue = 4096

// minRequestMemory is how long the plugin side remembers an incoming
// request for answers when the request names no timeout of its own.
const minRequestMemory = 30 * time.Second

func (s *adapterServer) requester() (Requester, error) {
	r, ok := s.impl.(Requester)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the adapter carries broadcasts only (no sdk.Requester)")
	}
	return r, nil
}

func (s *adapterServer) Request(in *pb.ClusterRequest, stream pb.Adapter_RequestServer) error {
	r, err := s.requester()
	if err != nil {
		return err
	}
	var sendErr error
	res, err := r.Request(stream.Context(), requestFromPB(in), func(resp ClusterResponse) {
		if sendErr == nil {
			sendErr = stream.Send(&pb.RequestEvent{Response: responseToPB(&resp)})
		}
	})
	if err != nil {
		return toStatus(err)
	}
	if sendErr != nil {
		return sendErr
	}
	return stream.Send(&pb.RequestEvent{Result: &pb.RequestResult{Expected: int32(res.Expected), Answered: int32(res.Answered)}})
}

// ServeRequests forwards the plugin's incoming requests to the host and
// the host's answers to the plugin's Respond functions.
func (s *adapterServer) ServeRequests(stream pb.Adapter_ServeRequestsServer) error {
	r, err := s.requester()
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	type pending struct {
		respond func(ClusterResponse)
		until   time.Time
		once    bool // one answer per server: forget it after that
	}
	var (
		mu      sync.Mutex
		waiting = make(map[uint64]pending)
		nextID  uint64
	)
	// Answers from the host; the plugin's Respond must not block.
	go func() {
		defer cancel()
		for {
			a, err := stream.Recv()
			if err != nil {
				return
			}
			mu.Lock()
			p, ok := waiting[a.GetId()]
			if ok && p.once {
				delete(waiting, a.GetId())
			}
			mu.Unlock()
			if ok && a.GetResponse() != nil {
				p.respond(responseFromPB(a.GetResponse()))
			}
		}
	}()
	// Forget requests past their deadline.
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				mu.Lock()
				for id, p := range waiting {
					if now.After(p.until) {
						delete(waiting, id)
					}
				}
				mu.Unlock()
			}
		}
	}()

	var sendErr error
	err = r.ServeRequests(ctx, first.GetNamespaces(), func(in IncomingRequest) {
		if sendErr != nil {
			return
		}
		mu.Lock()
		nextID++
		id := nextID
		if in.Respond != nil {
			waiting[id] = pending{respond: in.Respond, until: time.Now().Add(max(in.Timeout+5*time.Second, minRequestMemory)),
				once: in.Type != RequestBroadcastAck}
		}
		mu.Unlock()
		sendErr = stream.Send(&pb.IncomingRequest{Id: id, Request: requestToPB(&in.ClusterRequest), Answered: in.Respond != nil})
		if sendErr != nil {
			cancel()
		}
	})
	if sendErr != nil {
		return sendErr
	}
	if ctx.Err() != nil && stream.Context().Err() == nil {
		return nil // the host closed its side
	}
	return toStatus(err)
}

func (s *adapterServer) RoomsChanged(ctx context.Context, in *pb.RoomChanges) (*pb.RoomsChangedResponse, error) {
	o, ok := s.impl.(RoomObserver)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the adapter does not observe rooms (no sdk.RoomObserver)")
	}
	changes := make([]RoomChange, len(in.GetChanges()))
	for i, c := range in.GetChanges() {
		changes[i] = RoomChange{Namespace: c.GetNamespace(), Room: c.GetRoom(), Created: c.GetCreated()}
	}
	if err := o.RoomsChanged(ctx, changes); err != nil {
		return nil, toStatus(err)
	}
	return &pb.RoomsChangedResponse{}, nil
}

var (
	_ Requester    = (*adapterClient)(nil)
	_ RoomObserver = (*adapterClient)(nil)
)

// unsupported turns Unimplemented into an error wrapping ErrUnsupported.
func unsupported(method string, err error) error {
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("adapter plugin: %s: %w", method, ErrUnsupported)
	}
	return fromStatus(KindAdapter, method, err)
}

// Request sends one request and calls answer with each answer. A plugin
// without requests gives an error wrapping ErrUnsupported.
func (c *adapterClient) Request(ctx context.Context, req ClusterRequest, answer func(ClusterResponse)) (RequestResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Request(ctx, requestToPB(&req), callOpts...)
	if err != nil {
		return RequestResult{}, unsupported("Request", err)
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return RequestResult{}, errors.New("adapter plugin: Request: the stream ended without a result")
		}
		if err != nil {
			return RequestResult{}, unsupported("Request", err)
		}
		if r := ev.GetResult(); r != nil {
			return RequestResult{Expected: int(r.GetExpected()), Answered: int(r.GetAnswered())}, nil
		}
		if resp := ev.GetResponse(); resp != nil {
			answer(responseFromPB(resp))
		}
	}
}

// ServeRequests opens the stream of requests from other instances and calls
// handle with each. Answers go back through a bounded queue: Respond never
// blocks, and drops answers when the queue is full.
func (c *adapterClient) ServeRequests(ctx context.Context, namespaces []string, handle func(IncomingRequest)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.ServeRequests(ctx, callOpts...)
	if err != nil {
		return unsupported("ServeRequests", err)
	}
	if err := stream.Send(&pb.RequestAnswer{Namespaces: namespaces}); err != nil {
		if errors.Is(err, io.EOF) {
			// The plugin ended the stream first (e.g. Unimplemented): gRPC
			// gives the reason to Recv only.
			_, err = stream.Recv()
		}
		return c.serveErr(ctx, stream, err)
	}
	answers := make(chan *pb.RequestAnswer, answerQueue)
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		for {
			select {
			case <-ctx.Done():
				return
			case a := <-answers:
				if stream.Send(a) != nil {
					cancel()
					return
				}
			}
		}
	}()
	defer func() { cancel(); <-sendDone }()
	for {
		in, err := stream.Recv()
		if err != nil {
			return c.serveErr(ctx, stream, err)
		}
		req := IncomingRequest{ClusterRequest: requestFromPB(in.GetRequest())}
		if in.GetAnswered() {
			id := in.GetId()
			req.Respond = func(resp ClusterResponse) {
				select {
				case answers <- &pb.RequestAnswer{Id: id, Response: responseToPB(&resp)}:
				default: // full: the requester counts this server as silent
				}
			}
		}
		handle(req)
	}
}

func (c *adapterClient) serveErr(ctx context.Context, _ pb.Adapter_ServeRequestsClient, err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("adapter plugin: ServeRequests: %w", ctx.Err())
	}
	return unsupported("ServeRequests", err)
}

// RoomsChanged reports room changes in one call.
func (c *adapterClient) RoomsChanged(ctx context.Context, changes []RoomChange) error {
	in := &pb.RoomChanges{Changes: make([]*pb.RoomChange, len(changes))}
	vals := make([]pb.RoomChange, len(changes))
	for i, ch := range changes {
		vals[i].Namespace, vals[i].Room, vals[i].Created = ch.Namespace, ch.Room, ch.Created
		in.Changes[i] = &vals[i]
	}
	_, err := c.rpc.RoomsChanged(ctx, in, callOpts...)
	if err != nil {
		return unsupported("RoomsChanged", err)
	}
	return nil
}

func requestToPB(r *ClusterRequest) *pb.ClusterRequest {
	return &pb.ClusterRequest{
		Type: int32(r.Type), Namespace: r.Namespace, Rooms: r.Rooms, Except: r.Except,
		Targets: r.Targets, Close: r.Close, Data: r.Data, Attachments: r.Attachments,
		WantAck: r.WantAck, TimeoutMs: r.Timeout.Milliseconds(),
	}
}

func requestFromPB(r *pb.ClusterRequest) ClusterRequest {
	return ClusterRequest{
		Type: RequestType(r.GetType()), Namespace: r.GetNamespace(), Rooms: r.GetRooms(), Except: r.GetExcept(),
		Targets: r.GetTargets(), Close: r.GetClose(), Data: r.GetData(), Attachments: r.GetAttachments(),
		WantAck: r.GetWantAck(), Timeout: time.Duration(r.GetTimeoutMs()) * time.Millisecond,
	}
}

func responseToPB(r *ClusterResponse) *pb.ClusterResponse {
	out := &pb.ClusterResponse{
		Rooms: r.Rooms, Count: r.Count, ClientCount: int64(r.ClientCount),
		Ack: r.Ack, AckAttachments: r.AckAttachments,
	}
	if len(r.Sockets) > 0 {
		vals := make([]pb.RemoteSocket, len(r.Sockets))
		out.Sockets = make([]*pb.RemoteSocket, len(r.Sockets))
		for i, s := range r.Sockets {
			vals[i].Id, vals[i].Rooms, vals[i].Data, vals[i].Handshake = s.ID, s.Rooms, s.Data, s.Handshake
			out.Sockets[i] = &vals[i]
		}
	}
	return out
}

func responseFromPB(r *pb.ClusterResponse) ClusterResponse {
	out := ClusterResponse{
		Rooms: r.GetRooms(), Count: r.GetCount(), ClientCount: int(r.GetClientCount()),
		Ack: r.GetAck(), AckAttachments: r.GetAckAttachments(),
	}
	if ss := r.GetSockets(); len(ss) > 0 {
		out.Sockets = make([]RemoteSocket, len(ss))
		for i, s := range ss {
			out.Sockets[i] = RemoteSocket{ID: s.GetId(), Rooms: s.GetRooms(), Data: s.GetData(), Handshake: s.GetHandshake()}
		}
	}
	return out
}
