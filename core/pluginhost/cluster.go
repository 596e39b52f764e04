package pluginhost

import (
	"context"
	"fmt"

	"github.com/socketfleet/socketfleet/sdk"
)

// Request sends a cluster request through the adapter plugin and calls
// answer with each answer (never concurrently). It fails with an error
// wrapping sdk.ErrUnsupported when the plugin carries broadcasts only, and
// with ErrUnavailable while the plugin is down.
func (l *Link) Request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error) {
	return sdk.RequestResult{}, fmt.Errorf("adapter plugin %s: Request: %w", l.p.id, sdk.ErrUnsupported)
}

// ServeRequests sets the handler of requests from other instances to
// namespaces and opens the stream that carries them (re-opened after every
// restart). Call it once. handle is never called concurrently and must not
// block.
func (l *Link) ServeRequests(namespaces []string, handle func(sdk.IncomingRequest)) {}

// RoomChanged tells the adapter plugin that this instance now holds a room,
// or no longer does. It never blocks: changes are coalesced and sent in
// batches, in order. After a plugin restart the link first sends every room
// snapshot returns (set with SetRoomSnapshot) as created.
func (l *Link) RoomChanged(c sdk.RoomChange) {}

// SetRoomSnapshot sets what RoomChanged resends after a plugin restart:
// every room this instance holds, socket-id rooms excluded. Call before
// the first RoomChanged.
func (l *Link) SetRoomSnapshot(snapshot func() []sdk.RoomChange) {}

// Degraded is the reason the plugin last gave for not doing its job fully
// (sdk.StatusReporter), "" when it is fine or does not report.
func (p *Plugin) Degraded() string { return "" }

// PluginMetrics are the plugin's own metrics from its last Status, nil when
// it reports none.
func (p *Plugin) PluginMetrics(ctx context.Context) *sdk.MetricsSnapshot { return nil }
