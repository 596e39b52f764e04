package sdk

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// MagicCookieKey and MagicCookieValue are the go-plugin handshake cookie: a
// guard against running a plugin binary by hand, not a security boundary.
const (
	MagicCookieKey   = "SOCKETFLEET_PLUGIN"
	MagicCookieValue = "7c3f0e52-socketfleet-plugin-b1d94a6e"
)

// MaxFrameSize is the largest encoded message either side of the boundary
// accepts: one adapter batch, log batch, metrics snapshot or exposition. The
// host must keep its batches under it (gRPC's default of 4 MiB is too small
// for batches of large broadcasts).
const MaxFrameSize = 64 << 20

// dispenseTimeout bounds the Info and ConfigSchema calls a client makes when
// it is dispensed.
const dispenseTimeout = 10 * time.Second

// Handshake is the go-plugin handshake every socketfleet plugin and host use.
// Its ProtocolVersion is ProtocolVersion: go-plugin refuses a plugin built
// against another version before any call.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// HostPlugins is the host's plugin set, for plugin.ClientConfig.Plugins: one
// entry per kind, keyed by string(kind). Dispense(string(kind)) returns a
// value implementing that kind's interface (Authenticator, Adapter, Sharder,
// MetricsExporter or LogSink), whose calls cross the gRPC boundary.
//
// Dispensing calls Info and ConfigSchema once (bounded by 10 s) and fails
// with the plugin's error if either fails; Info and ConfigSchema then return
// those answers without further calls. The Adapter client also implements
// io.Closer: Close ends the Publish stream and waits for the plugin to
// acknowledge it.
func HostPlugins() plugin.PluginSet {
	set := plugin.PluginSet{}
	for _, k := range Kinds() {
		set[string(k)] = &grpcPlugin{kind: k}
	}
	return set
}

// ServePlugins is the plugin side's set for p: one entry, keyed by
// string(kind), whose gRPC server adapts p to its kind's service and to the
// Lifecycle service. Serve uses it; so does the test kit. It fails as KindOf
// does.
func ServePlugins(p Plugin) (plugin.PluginSet, error) {
	kind, err := KindOf(p)
	if err != nil {
		return nil, err
	}
	return plugin.PluginSet{string(kind): &grpcPlugin{kind: kind, impl: p}}, nil
}

// KindOf returns the kind p serves: the kind its Info names, provided p
// implements that kind's interface. It fails when p implements no kind
// interface, when Info names another kind, or when Info's ProtocolVersion is
// not ProtocolVersion.
func KindOf(p Plugin) (Kind, error) {
	if p == nil {
		return "", fmt.Errorf("sdk: nil plugin")
	}
	var implemented []Kind
	for _, k := range Kinds() {
		if implements(p, k) {
			implemented = append(implemented, k)
		}
	}
	info := p.Info()
	if len(implemented) == 0 {
		return "", fmt.Errorf("sdk: %T implements none of the plugin kind interfaces (sdk.Authenticator, sdk.Adapter, sdk.Sharder, sdk.MetricsExporter, sdk.LogSink)", p)
	}
	if !implements(p, info.Kind) {
		return "", fmt.Errorf("sdk: %T: Info().Kind is %q, but it implements the interface of %q", p, info.Kind, implemented)
	}
	if info.ProtocolVersion != ProtocolVersion {
		return "", fmt.Errorf("sdk: %T reports plugin protocol %d in Info(), this sdk speaks %d (set Info.ProtocolVersion to sdk.ProtocolVersion)", p, info.ProtocolVersion, ProtocolVersion)
	}
	return info.Kind, nil
}

func implements(p Plugin, k Kind) bool {
	var ok bool
	switch k {
	case KindAuth:
		_, ok = p.(Authenticator)
	case KindAdapter:
		_, ok = p.(Adapter)
	case KindSharding:
		_, ok = p.(Sharder)
	case KindMetrics:
		_, ok = p.(MetricsExporter)
	case KindLogSink:
		_, ok = p.(LogSink)
	}
	return ok
}

// grpcPlugin is the go-plugin plugin.GRPCPlugin of one kind. With impl set
// it serves impl; the host side leaves impl nil and only dispenses clients.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	kind Kind
	impl Plugin
}

var _ plugin.GRPCPlugin = (*grpcPlugin)(nil)

// GRPCServer registers Lifecycle and the kind's service for impl.
func (g *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if g.impl == nil {
		return fmt.Errorf("sdk: no %s plugin to serve", g.kind)
	}
	registerLifecycle(s, g.impl)
	switch g.kind {
	case KindAuth:
		registerAuth(s, g.impl.(Authenticator))
	case KindAdapter:
		registerAdapter(s, g.impl.(Adapter))
	case KindSharding:
		registerSharding(s, g.impl.(Sharder))
	case KindMetrics:
		registerMetrics(s, g.impl.(MetricsExporter))
	case KindLogSink:
		registerLogSink(s, g.impl.(LogSink))
	default:
		return fmt.Errorf("sdk: unknown plugin kind %q", g.kind)
	}
	return nil
}

// GRPCClient returns the kind's client over conn. ctx ends when the plugin
// process is gone.
func (g *grpcPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	lc, err := newLifecycleClient(ctx, g.kind, conn)
	if err != nil {
		return nil, err
	}
	switch g.kind {
	case KindAuth:
		return newAuthClient(lc, conn), nil
	case KindAdapter:
		return newAdapterClient(ctx, lc, conn), nil
	case KindSharding:
		return newShardingClient(lc, conn), nil
	case KindMetrics:
		return newMetricsClient(lc, conn), nil
	case KindLogSink:
		return newLogSinkClient(lc, conn), nil
	}
	return nil, fmt.Errorf("sdk: unknown plugin kind %q", g.kind)
}

// callOpts apply to every client call: frames up to MaxFrameSize.
var callOpts = []grpc.CallOption{grpc.MaxCallRecvMsgSize(MaxFrameSize), grpc.MaxCallSendMsgSize(MaxFrameSize)}

// ServerOptions are the gRPC server options Serve adds to go-plugin's (which
// carry AutoMTLS): frames up to MaxFrameSize. The test kit uses them too.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxFrameSize), grpc.MaxSendMsgSize(MaxFrameSize)}
}

// Serve serves p as a go-plugin gRPC plugin; a plugin's main calls it and
// nothing else. The kind is the one p implements and names in Info (see
// KindOf); if that is ambiguous or wrong Serve prints why to stderr and exits
// with status 1. It returns only when the host is done with the plugin.
//
// Serve exits the process when its parent (the host) is gone, checking every
// 500 ms, so a host killed with SIGKILL leaves no plugin behind.
//
// go-plugin replaces os.Stdout and os.Stderr while serving: what the plugin
// writes there reaches the host only if it sets ClientConfig.SyncStdout /
// SyncStderr. Loggers created before Serve (hclog, the log package) write to
// the real stderr, which the host reads line by line into its log.
func Serve(p Plugin) {
	set, err := ServePlugins(p)
	if err != nil {
		fmt.Fprintf(os.Stderr, "plugin not served: %v\n", err)
		os.Exit(1)
	}
	go exitWhenOrphaned(os.Getppid(), 500*time.Millisecond)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		Plugins:         set,
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return plugin.DefaultGRPCServer(append(opts, ServerOptions()...))
		},
	})
}

// parentGoneExitCode is the status a plugin exits with when its host is gone.
const parentGoneExitCode = 3

// exitWhenOrphaned exits the process once the parent pid is no longer
// parent: the parent died and the process was re-parented (to init or a
// subreaper).
func exitWhenOrphaned(parent int, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != parent {
			// Nothing is written: nobody reads our stderr any more, and a
			// write to a closed pipe would raise SIGPIPE.
			os.Exit(parentGoneExitCode)
		}
	}
}
