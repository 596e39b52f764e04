package sdk

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/socketfleet/socketfleet/sdk/internal/pluginpb"
)

// authServer adapts an Authenticator to the Auth service. A refusal travels
// as a response with Allow false; only a Go error becomes a gRPC error.
type authServer struct {
	pb.UnimplementedAuthServer
	impl Authenticator
}

func registerAuth(s *grpc.Server, impl Authenticator) {
	pb.RegisterAuthServer(s, &authServer{impl: impl})
}

func (s *authServer) Authenticate(ctx context.Context, req *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	d, err := s.impl.Authenticate(ctx, &AuthRequest{
		Namespace:  req.GetNamespace(),
		Auth:       rawJSON(req.GetAuthJson()),
		Headers:    req.GetHeaders(),
		Query:      req.GetQuery(),
		RemoteAddr: req.GetRemoteAddr(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	if d == nil {
		return nil, status.Error(codes.Internal, "Authenticate returned neither a decision nor an error")
	}
	return &pb.AuthenticateResponse{
		Allow:         d.Allow,
		UserId:        d.UserID,
		Rooms:         d.Rooms,
		DataJson:      d.Data,
		Message:       d.Message,
		ErrorDataJson: d.ErrorData,
		RedactAuth:    d.RedactAuth,
	}, nil
}

// authClient is the host's Authenticator over the Auth service.
type authClient struct {
	*lifecycleClient
	rpc pb.AuthClient
}

var _ Authenticator = (*authClient)(nil)

func newAuthClient(lc *lifecycleClient, conn grpc.ClientConnInterface) *authClient {
	return &authClient{lifecycleClient: lc, rpc: pb.NewAuthClient(conn)}
}

// Authenticate asks the plugin about one handshake: one unary call.
func (c *authClient) Authenticate(ctx context.Context, req *AuthRequest) (*AuthDecision, error) {
	in := &pb.AuthenticateRequest{}
	if req != nil {
		in = &pb.AuthenticateRequest{
			Namespace:  req.Namespace,
			AuthJson:   req.Auth,
			Headers:    req.Headers,
			Query:      req.Query,
			RemoteAddr: req.RemoteAddr,
		}
	}
	out, err := c.rpc.Authenticate(ctx, in, callOpts...)
	if err != nil {
		return nil, fromStatus(KindAuth, "Authenticate", err)
	}
	return &AuthDecision{
		Allow:      out.GetAllow(),
		UserID:     out.GetUserId(),
		Rooms:      out.GetRooms(),
		Data:       rawJSON(out.GetDataJson()),
		Message:    out.GetMessage(),
		ErrorData:  rawJSON(out.GetErrorDataJson()),
		RedactAuth: out.GetRedactAuth(),
	}, nil
}

// rawJSON keeps "absent" as nil: proto3 does not tell empty bytes from none.
func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}
