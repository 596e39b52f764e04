package sdk

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/socketfleet/socketfleet/sdk/internal/pluginpb"
)

// shardingServer adapts a Sharder to the Sharding service.
type shardingServer struct {
	pb.UnimplementedShardingServer
	impl Sharder
}

func registerSharding(s *grpc.Server, impl Sharder) {
	pb.RegisterShardingServer(s, &shardingServer{impl: impl})
}

func (s *shardingServer) Assign(ctx context.Context, req *pb.AssignRequest) (*pb.AssignResponse, error) {
	a, err := s.impl.Assign(ctx, req.GetUserId())
	if err != nil {
		return nil, toStatus(err)
	}
	if a == nil {
		return nil, status.Error(codes.Internal, "Assign returned neither an assignment nor an error")
	}
	return &pb.AssignResponse{Shard: int64(a.Shard), Local: a.Local, Url: a.URL}, nil
}

// shardingClient is the host's Sharder over the Sharding service.
type shardingClient struct {
	*lifecycleClient
	rpc pb.ShardingClient
}

var _ Sharder = (*shardingClient)(nil)

func newShardingClient(lc *lifecycleClient, conn grpc.ClientConnInterface) *shardingClient {
	return &shardingClient{lifecycleClient: lc, rpc: pb.NewShardingClient(conn)}
}

// Assign asks the plugin where userID belongs: one unary call.
func (c *shardingClient) Assign(ctx context.Context, userID string) (*Assignment, error) {
	out, err := c.rpc.Assign(ctx, &pb.AssignRequest{UserId: userID}, callOpts...)
	if err != nil {
		return nil, fromStatus(KindSharding, "Assign", err)
	}
	return &Assignment{Shard: int(out.GetShard()), Local: out.GetLocal(), URL: out.GetUrl()}, nil
}
