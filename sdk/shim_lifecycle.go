package sdk

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/socketfleet/socketfleet/sdk/internal/pluginpb"
)

// lifecycleServer adapts a Plugin to the Lifecycle service.
type lifecycleServer struct {
	pb.UnimplementedLifecycleServer
	impl Plugin
}

func registerLifecycle(s *grpc.Server, impl Plugin) {
	pb.RegisterLifecycleServer(s, &lifecycleServer{impl: impl})
}

func (s *lifecycleServer) Info(context.Context, *pb.InfoRequest) (*pb.InfoResponse, error) {
	in := s.impl.Info()
	return &pb.InfoResponse{
		Kind:            string(in.Kind),
		Name:            in.Name,
		Version:         in.Version,
		ProtocolVersion: int32(in.ProtocolVersion),
	}, nil
}

func (s *lifecycleServer) ConfigSchema(context.Context, *pb.ConfigSchemaRequest) (*pb.ConfigSchemaResponse, error) {
	sc := s.impl.ConfigSchema()
	out := &pb.ConfigSchemaResponse{Attributes: make([]*pb.ConfigAttribute, len(sc.Attributes))}
	for i, a := range sc.Attributes {
		out.Attributes[i] = &pb.ConfigAttribute{Name: a.Name, Type: string(a.Type), Required: a.Required, Description: a.Description}
	}
	return out, nil
}

func (s *lifecycleServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	if dir := req.GetConfigDir(); dir != "" {
		ctx = WithConfigDir(ctx, dir)
	}
	if err := s.impl.Configure(ctx, Config(req.GetConfigJson())); err != nil {
		return nil, toStatus(err)
	}
	return &pb.ConfigureResponse{}, nil
}

// lifecycleClient is the host's side of the Lifecycle service, embedded in
// every kind's client. Info and ConfigSchema are asked once, at dispense.
type lifecycleClient struct {
	kind   Kind
	rpc    pb.LifecycleClient
	info   Info
	schema Schema
}

func newLifecycleClient(ctx context.Context, kind Kind, conn grpc.ClientConnInterface) (*lifecycleClient, error) {
	c := &lifecycleClient{kind: kind, rpc: pb.NewLifecycleClient(conn)}
	ctx, cancel := context.WithTimeout(ctx, dispenseTimeout)
	defer cancel()
	in, err := c.rpc.Info(ctx, &pb.InfoRequest{}, callOpts...)
	if err != nil {
		return nil, fmt.Errorf("dispensing %s plugin: %w", kind, fromStatus(kind, "Info", err))
	}
	c.info = Info{Kind: Kind(in.GetKind()), Name: in.GetName(), Version: in.GetVersion(), ProtocolVersion: int(in.GetProtocolVersion())}
	sc, err := c.rpc.ConfigSchema(ctx, &pb.ConfigSchemaRequest{}, callOpts...)
	if err != nil {
		return nil, fmt.Errorf("dispensing %s plugin: %w", kind, fromStatus(kind, "ConfigSchema", err))
	}
	if n := len(sc.GetAttributes()); n > 0 {
		c.schema.Attributes = make([]Attribute, n)
		for i, a := range sc.GetAttributes() {
			c.schema.Attributes[i] = Attribute{Name: a.GetName(), Type: AttrType(a.GetType()), Required: a.GetRequired(), Description: a.GetDescription()}
		}
	}
	return c, nil
}

// Info returns the plugin's answer at dispense.
func (c *lifecycleClient) Info() Info { return c.info }

// ConfigSchema returns the plugin's answer at dispense (a copy).
func (c *lifecycleClient) ConfigSchema() Schema {
	if c.schema.Attributes == nil {
		return Schema{}
	}
	return Schema{Attributes: append([]Attribute(nil), c.schema.Attributes...)}
}

// Configure hands the plugin its decoded block, and the config folder that
// ctx carries (WithConfigDir).
func (c *lifecycleClient) Configure(ctx context.Context, cfg Config) error {
	_, err := c.rpc.Configure(ctx, &pb.ConfigureRequest{ConfigJson: cfg, ConfigDir: ConfigDir(ctx)}, callOpts...)
	return fromStatus(c.kind, "Configure", err)
}

// Status asks a plugin that implements StatusReporter; others answer
// Unimplemented, which the host reads as "healthy, no metrics".
func (s *lifecycleServer) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	r, ok := s.impl.(StatusReporter)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the plugin reports no status")
	}
	st, err := r.Status(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.StatusResponse{Degraded: st.Degraded, Metrics: snapshotToPB(&st.Metrics)}, nil
}

// Status asks the plugin for its Status. A plugin that does not report one
// (it does not implement StatusReporter, or predates the call) gives an
// error wrapping ErrUnsupported.
func (c *lifecycleClient) Status(ctx context.Context) (Status, error) {
	out, err := c.rpc.Status(ctx, &pb.StatusRequest{}, callOpts...)
	if status.Code(err) == codes.Unimplemented {
		return Status{}, fmt.Errorf("%s plugin: Status: %w", c.kind, ErrUnsupported)
	}
	if err != nil {
		return Status{}, fromStatus(c.kind, "Status", err)
	}
	return Status{Degraded: out.GetDegraded(), Metrics: *snapshotFromPB(out.GetMetrics())}, nil
}
