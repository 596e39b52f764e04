package sdk

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/socketfleet/socketfleet/sdk/internal/pluginpb"
)

// logSinkServer adapts a LogSink to the LogSink service.
type logSinkServer struct {
	pb.UnimplementedLogSinkServer
	impl LogSink
}

func registerLogSink(s *grpc.Server, impl LogSink) {
	pb.RegisterLogSinkServer(s, &logSinkServer{impl: impl})
}

func (s *logSinkServer) Write(ctx context.Context, in *pb.LogBatch) (*pb.WriteResponse, error) {
	es := in.GetEntries()
	batch := make([]LogEntry, len(es))
	for i, e := range es {
		batch[i] = LogEntry{Level: e.GetLevel(), Message: e.GetMessage(), Fields: rawJSON(e.GetFieldsJson())}
		if e.GetTime() != nil {
			batch[i].Time = e.GetTime().AsTime()
		}
	}
	if err := s.impl.Write(ctx, batch); err != nil {
		return nil, toStatus(err)
	}
	return &pb.WriteResponse{}, nil
}

func (s *logSinkServer) Flush(ctx context.Context, _ *pb.FlushRequest) (*pb.FlushResponse, error) {
	if err := s.impl.Flush(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &pb.FlushResponse{}, nil
}

// logSinkClient is the host's LogSink over the LogSink service.
type logSinkClient struct {
	*lifecycleClient
	rpc pb.LogSinkClient
}

var _ LogSink = (*logSinkClient)(nil)

func newLogSinkClient(lc *lifecycleClient, conn grpc.ClientConnInterface) *logSinkClient {
	return &logSinkClient{lifecycleClient: lc, rpc: pb.NewLogSinkClient(conn)}
}

// Write sends one batch: one unary call. Times arrive in UTC (same
// instant); a zero time stays zero.
func (c *logSinkClient) Write(ctx context.Context, batch []LogEntry) error {
	if len(batch) == 0 {
		return nil
	}
	vals := make([]pb.LogEntry, len(batch))
	in := &pb.LogBatch{Entries: make([]*pb.LogEntry, len(batch))}
	for i, e := range batch {
		vals[i].Level, vals[i].Message, vals[i].FieldsJson = e.Level, e.Message, e.Fields
		if !e.Time.IsZero() {
			vals[i].Time = timestamppb.New(e.Time)
		}
		in.Entries[i] = &vals[i]
	}
	_, err := c.rpc.Write(ctx, in, callOpts...)
	return fromStatus(KindLogSink, "Write", err)
}

// Flush waits for the plugin to store everything written so far.
func (c *logSinkClient) Flush(ctx context.Context) error {
	_, err := c.rpc.Flush(ctx, &pb.FlushRequest{}, callOpts...)
	return fromStatus(KindLogSink, "Flush", err)
}
