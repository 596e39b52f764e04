package sdk

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/socketfleet/socketfleet/sdk/internal/pluginpb"
)

// Connection state recovery across the boundary: enabling is one call per
// process, session changes cross in batches, a restore is one call per
// reconnecting client.

func (s *adapterServer) sessionStore() (SessionStore, error) {
	st, ok := s.impl.(SessionStore)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the adapter cannot recover sessions (no sdk.SessionStore)")
	}
	return st, nil
}

func (s *adapterServer) EnableRecovery(ctx context.Context, in *pb.RecoveryConfig) (*pb.EnableRecoveryResponse, error) {
	st, err := s.sessionStore()
	if err != nil {
		return nil, err
	}
	cfg := RecoveryConfig{MaxDisconnection: time.Duration(in.GetMaxDisconnectionMs()) * time.Millisecond, Resume: in.GetResume()}
	if err := st.EnableRecovery(ctx, cfg); err != nil {
		return nil, toStatus(err)
	}
	return &pb.EnableRecoveryResponse{}, nil
}

func (s *adapterServer) SaveSessions(ctx context.Context, in *pb.SessionChanges) (*pb.SaveSessionsResponse, error) {
	st, err := s.sessionStore()
	if err != nil {
		return nil, err
	}
	changes := make([]SessionChange, len(in.GetChanges()))
	for i, c := range in.GetChanges() {
		changes[i] = SessionChange{State: SessionState(c.GetState()), Session: sessionFromPB(c.GetSession())}
	}
	if err := st.SaveSessions(ctx, changes); err != nil {
		return nil, toStatus(err)
	}
	return &pb.SaveSessionsResponse{}, nil
}

func (s *adapterServer) RestoreSession(ctx context.Context, in *pb.RestoreSessionRequest) (*pb.RestoreSessionResponse, error) {
	st, err := s.sessionStore()
	if err != nil {
		return nil, err
	}
	rs, err := st.RestoreSession(ctx, in.GetNamespace(), in.GetPid(), in.GetOffset())
	if errors.Is(err, ErrNoSession) {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.RestoreSessionResponse{Session: sessionToPB(&rs.Session), Missed: messagesToPB(rs.Missed)}, nil
}

var _ SessionStore = (*adapterClient)(nil)

// EnableRecovery asks the plugin to back recovery. A plugin without it
// gives an error wrapping ErrUnsupported.
func (c *adapterClient) EnableRecovery(ctx context.Context, cfg RecoveryConfig) error {
	_, err := c.rpc.EnableRecovery(ctx, &pb.RecoveryConfig{MaxDisconnectionMs: cfg.MaxDisconnection.Milliseconds(), Resume: cfg.Resume}, callOpts...)
	if err != nil {
		return unsupported("EnableRecovery", err)
	}
	return nil
}

// SaveSessions sends one batch of session changes.
func (c *adapterClient) SaveSessions(ctx context.Context, changes []SessionChange) error {
	in := &pb.SessionChanges{Changes: make([]*pb.SessionChange, len(changes))}
	for i := range changes {
		in.Changes[i] = &pb.SessionChange{State: int32(changes[i].State), Session: sessionToPB(&changes[i].Session)}
	}
	if _, err := c.rpc.SaveSessions(ctx, in, callOpts...); err != nil {
		return unsupported("SaveSessions", err)
	}
	return nil
}

// RestoreSession asks for a session back; ErrNoSession when there is none.
func (c *adapterClient) RestoreSession(ctx context.Context, namespace, pid, offset string) (*RestoredSession, error) {
	out, err := c.rpc.RestoreSession(ctx, &pb.RestoreSessionRequest{Namespace: namespace, Pid: pid, Offset: offset}, callOpts...)
	if status.Code(err) == codes.NotFound {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, unsupported("RestoreSession", err)
	}
	return &RestoredSession{Session: sessionFromPB(out.GetSession()), Missed: messagesFromPB(out.GetMissed())}, nil
}

func sessionToPB(s *Session) *pb.Session {
	return &pb.Session{Namespace: s.Namespace, Id: s.ID, Pid: s.PID, Rooms: s.Rooms, Data: s.Data, User: s.User, Offset: s.Offset}
}

func sessionFromPB(s *pb.Session) Session {
	return Session{Namespace: s.GetNamespace(), ID: s.GetId(), PID: s.GetPid(), Rooms: s.GetRooms(),
		Data: s.GetData(), User: s.GetUser(), Offset: s.GetOffset()}
}
