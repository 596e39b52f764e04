// Package inproc serves a plugin over an in-memory gRPC connection (bufconn)
// and dispenses the host's client for it, exactly as go-plugin would over a
// socket: same services, same shims, no process. The test kit and the sdk's
// own tests use it.
package inproc

import (
	"context"
	"fmt"
	"net"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/socketfleet/socketfleet/sdk"
)

// Conn is one served plugin and its client.
type Conn struct {
	// Client is the host-side value dispensed for the plugin's kind; it
	// implements that kind's interface.
	Client sdk.Plugin
	Kind   sdk.Kind

	server *grpc.Server
	conn   *grpc.ClientConn
	cancel context.CancelFunc
	lis    *bufconn.Listener
}

// Connect serves p (with sdk.ServerOptions and opts) on an in-memory
// listener and dispenses its client. Close releases both.
func Connect(p sdk.Plugin, opts ...grpc.ServerOption) (*Conn, error) {
	set, err := sdk.ServePlugins(p)
	if err != nil {
		return nil, err
	}
	kind := p.Info().Kind
	lis := bufconn.Listen(1 << 20)
	server := grpc.NewServer(append(sdk.ServerOptions(), opts...)...)
	if err := set[string(kind)].(plugin.GRPCPlugin).GRPCServer(nil, server); err != nil {
		return nil, fmt.Errorf("register %s plugin: %w", kind, err)
	}
	go func() { _ = server.Serve(lis) }()

	conn, err := grpc.NewClient("passthrough:///inproc",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		server.Stop()
		return nil, fmt.Errorf("dial in-memory plugin: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{Kind: kind, server: server, conn: conn, cancel: cancel, lis: lis}
	raw, err := sdk.HostPlugins()[string(kind)].(plugin.GRPCPlugin).GRPCClient(ctx, nil, conn)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.Client = raw.(sdk.Plugin)
	return c, nil
}

// Close stops the server and closes the connection; the client's calls fail
// afterwards.
func (c *Conn) Close() {
	c.cancel()
	_ = c.conn.Close()
	c.server.Stop()
	_ = c.lis.Close()
}
