package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"

	pb "github.com/socketfleet/socketfleet/sdk/internal/pluginpb"
)

// adapterServer adapts an Adapter to the Adapter service: each Publish
// frame is one impl.Publish call, each deliver call one Subscribe frame.
type adapterServer struct {
	pb.UnimplementedAdapterServer
	impl Adapter
}

func registerAdapter(s *grpc.Server, impl Adapter) {
	pb.RegisterAdapterServer(s, &adapterServer{impl: impl})
}

// Publish reads batches until the host closes the stream. The first batch
// the plugin fails to publish ends the stream with the plugin's error.
func (s *adapterServer) Publish(stream pb.Adapter_PublishServer) error {
	var sum pb.PublishSummary
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&sum)
		}
		if err != nil {
			return err
		}
		batch := messagesFromPB(in.GetMessages())
		if len(batch) == 0 {
			continue
		}
		if err := s.impl.Publish(stream.Context(), batch); err != nil {
			return toStatus(err)
		}
		sum.Batches++
		sum.Messages += uint64(len(batch))
	}
}

// Subscribe runs impl.Subscribe for as long as the host keeps the stream.
func (s *adapterServer) Subscribe(_ *pb.SubscribeRequest, stream pb.Adapter_SubscribeServer) error {
	err := s.impl.Subscribe(stream.Context(), func(batch []AdapterMessage) error {
		if len(batch) == 0 {
			return nil
		}
		return stream.Send(&pb.AdapterBatch{Messages: messagesToPB(batch)})
	})
	return toStatus(err)
}

// adapterClient is the host's Adapter over the Adapter service. It keeps
// one Publish stream open and sends each batch as one frame.
type adapterClient struct {
	*lifecycleClient
	rpc  pb.AdapterClient
	base context.Context // ends when the plugin process is gone

	mu     sync.Mutex
	pub    pb.Adapter_PublishClient // nil until the first Publish and after an error
	cancel context.CancelFunc       // ends pub
}

var (
	_ Adapter   = (*adapterClient)(nil)
	_ io.Closer = (*adapterClient)(nil)
)

func newAdapterClient(base context.Context, lc *lifecycleClient, conn grpc.ClientConnInterface) *adapterClient {
	return &adapterClient{lifecycleClient: lc, rpc: pb.NewAdapterClient(conn), base: base}
}

// Publish sends batch as one frame of the long-lived Publish stream, opening
// it first if needed. It returns once gRPC has taken the frame (flow control
// may make it wait); a plugin's failure to publish an earlier batch shows up
// as the error of a later call, after which the next call opens a new
// stream. When ctx ends during the send the stream is abandoned and ctx's
// error returned.
func (c *adapterClient) Publish(ctx context.Context, batch []AdapterMessage) error {
	if len(batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("adapter plugin: Publish: %w", err)
	}
	frame := &pb.AdapterBatch{Messages: messagesToPB(batch)}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pub == nil {
		sctx, cancel := context.WithCancel(c.base)
		stream, err := c.rpc.Publish(sctx, callOpts...)
		if err != nil {
			cancel()
			return fromStatus(KindAdapter, "Publish", err)
		}
		c.pub, c.cancel = stream, cancel
	}
	stop := context.AfterFunc(ctx, c.cancel)
	err := c.pub.Send(frame)
	if !stop() { // ctx ended meanwhile and cancelled the stream
		c.dropStream()
		return fmt.Errorf("adapter plugin: Publish: %w", ctx.Err())
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) { // the plugin ended the stream: its status says why
		_, err = c.pub.CloseAndRecv()
		if err == nil {
			err = errors.New("plugin closed the Publish stream")
		}
	}
	c.dropStream()
	return fromStatus(KindAdapter, "Publish", err)
}

// dropStream forgets the Publish stream; the next Publish opens another.
func (c *adapterClient) dropStream() {
	c.cancel()
	c.pub, c.cancel = nil, nil
}

// Close ends the Publish stream, if open, after the plugin has handled every
// batch sent on it, and returns the plugin's error if it failed one.
func (c *adapterClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pub == nil {
		return nil
	}
	_, err := c.pub.CloseAndRecv()
	c.dropStream()
	return fromStatus(KindAdapter, "Publish", err)
}

// Subscribe opens one Subscribe stream and calls deliver with each batch it
// carries, until ctx ends (it then returns an error wrapping ctx.Err()), the
// stream fails (the plugin's error), deliver fails (that error) or the plugin
// ends the stream (nil).
func (c *adapterClient) Subscribe(ctx context.Context, deliver func(batch []AdapterMessage) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Subscribe(ctx, &pb.SubscribeRequest{}, callOpts...)
	if err != nil {
		return c.subscribeErr(ctx, err)
	}
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return c.subscribeErr(ctx, err)
		}
		if err := deliver(messagesFromPB(in.GetMessages())); err != nil {
			return err
		}
	}
}

func (c *adapterClient) subscribeErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("adapter plugin: Subscribe: %w", ctx.Err())
	}
	return fromStatus(KindAdapter, "Subscribe", err)
}

// messagesToPB converts a batch for the wire; byte slices are shared, not
// copied.
func messagesToPB(batch []AdapterMessage) []*pb.AdapterMessage {
	vals := make([]pb.AdapterMessage, len(batch))
	out := make([]*pb.AdapterMessage, len(batch))
	for i := range batch {
		m := &batch[i]
		v := &vals[i]
		v.Namespace, v.Rooms, v.Except = m.Namespace, m.Rooms, m.Except
		v.Data, v.Attachments, v.Volatile, v.Offset = m.Data, m.Attachments, m.Volatile, m.Offset
		out[i] = v
	}
	return out
}

// messagesFromPB converts a received batch; the result owns its memory.
func messagesFromPB(ms []*pb.AdapterMessage) []AdapterMessage {
	if len(ms) == 0 {
		return nil
	}
	out := make([]AdapterMessage, len(ms))
	for i, m := range ms {
		out[i] = AdapterMessage{
			Namespace:   m.GetNamespace(),
			Rooms:       m.GetRooms(),
			Except:      m.GetExcept(),
			Data:        m.GetData(),
			Attachments: m.GetAttachments(),
			Volatile:    m.GetVolatile(),
			Offset:      m.GetOffset(),
		}
	}
	return out
}
