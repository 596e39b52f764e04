package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

// requestGrace is how long the host waits for a Request beyond the
// request's own timeout (the plugin enforces that one) before giving up on
// the plugin itself.
const requestGrace = 5 * time.Second

// defaultRequestWait bounds a request that names no timeout (the plugin's
// own default applies, typically 5s).
const defaultRequestWait = 30 * time.Second

// roomQueue bounds the room changes waiting to be sent. When it is full
// changes are dropped and the next batch is preceded by a full snapshot.
const roomQueue = 65536

// roomLinger is how long room changes are coalesced before a send.
const roomLinger = 5 * time.Millisecond

// clusterState is the part of a Link that carries requests and room
// changes.
type clusterState struct {
	serveOnce sync.Once
	serveDone chan struct{}

	rooms       chan sdk.RoomChange
	roomsOnce   sync.Once
	roomsDone   chan struct{}
	snapshot    atomic.Pointer[func() []sdk.RoomChange]
	roomsLost   atomic.Bool // changes were dropped: resend the snapshot
	unsupported atomic.Bool // the plugin is no RoomObserver: stop sending
}

// Request sends a cluster request through the adapter plugin and calls
// answer with each answer (never concurrently). It fails with an error
// wrapping sdk.ErrUnsupported when the plugin carries broadcasts only, and
// with ErrUnavailable while the plugin is down.
func (l *Link) Request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error) {
	inst := l.p.live()
	if inst == nil {
		return sdk.RequestResult{}, fmt.Errorf("plugin %s: Request: %w", l.p.id, ErrUnavailable)
	}
	r, ok := inst.raw.(sdk.Requester)
	if !ok {
		return sdk.RequestResult{}, fmt.Errorf("plugin %s: Request: %w", l.p.id, sdk.ErrUnsupported)
	}
	wait := defaultRequestWait
	if req.Timeout > 0 {
		wait = req.Timeout + requestGrace
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// The plugin's process may die mid-request: end the call then.
	go func() {
		select {
		case <-inst.dead:
			cancel()
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	res, err := r.Request(ctx, req, answer)
	l.p.stats.observe(time.Since(start))
	if err != nil {
		if errors.Is(err, sdk.ErrUnsupported) {
			return res, fmt.Errorf("plugin %s: Request: %w", l.p.id, sdk.ErrUnsupported)
		}
		l.p.stats.errors.Add(1)
		if inst.isDead() {
			return res, fmt.Errorf("plugin %s: Request: %w (%v)", l.p.id, ErrUnavailable, err)
		}
		return res, fmt.Errorf("plugin %s: Request %s: %w", l.p.id, req.Type, err)
	}
	return res, nil
}

// ServeRequests sets the handler of requests from other instances to
// namespaces and opens the stream that carries them (re-opened after every
// restart). Call it once. handle is never called concurrently and must not
// block.
func (l *Link) ServeRequests(namespaces []string, handle func(sdk.IncomingRequest)) {
	l.cs.serveOnce.Do(func() {
		l.cs.serveDone = make(chan struct{})
		go l.serveRequests(append([]string(nil), namespaces...), handle)
	})
}

func (l *Link) serveRequests(namespaces []string, handle func(sdk.IncomingRequest)) {
	defer close(l.cs.serveDone)
	l.keepOpen("ServeRequests", func(ctx context.Context, raw sdk.Plugin) error {
		r, ok := raw.(sdk.Requester)
		if !ok {
			return sdk.ErrUnsupported
		}
		err := r.ServeRequests(ctx, namespaces, handle)
		if errors.Is(err, sdk.ErrUnsupported) {
			l.p.log.Info("adapter plugin carries broadcasts only: cluster requests reach this instance's sockets only")
		}
		return err
	})
}

// RoomChanged tells the adapter plugin that this instance now holds a room,
// or no longer does. It never blocks: changes are coalesced and sent in
// batches, in order. After a plugin restart the link first sends every room
// snapshot returns (set with SetRoomSnapshot) as created.
func (l *Link) RoomChanged(c sdk.RoomChange) {
	if l.cs.unsupported.Load() || l.closed.Load() {
		return
	}
	l.startRooms()
	select {
	case l.cs.rooms <- c:
	default:
		l.cs.roomsLost.Store(true)
	}
}

// SetRoomSnapshot sets what RoomChanged resends after a plugin restart:
// every room this instance holds, socket-id rooms excluded. Call before
// the first RoomChanged.
func (l *Link) SetRoomSnapshot(snapshot func() []sdk.RoomChange) {
	l.cs.snapshot.Store(&snapshot)
	l.startRooms()
}

func (l *Link) startRooms() {
	l.cs.roomsOnce.Do(func() {
		l.cs.rooms = make(chan sdk.RoomChange, roomQueue)
		l.cs.roomsDone = make(chan struct{})
		go l.sendRooms()
	})
}

// sendRooms drains room changes into RoomsChanged calls. It resends the
// snapshot to every new plugin process (its state is fresh) and after
// changes were dropped.
func (l *Link) sendRooms() {
	defer close(l.cs.roomsDone)
	ctx := l.out.ctx
	var sentTo *instance // the process that has our rooms
	var batch []sdk.RoomChange
	for ctx.Err() == nil {
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case c := <-l.cs.rooms:
				batch = append(batch, c)
			case <-time.After(time.Second): // notice restarts with no new changes
			}
			if !sleepCtx(ctx, roomLinger) {
				return
			}
		}
	more:
		for len(batch) < 4096 {
			select {
			case c := <-l.cs.rooms:
				batch = append(batch, c)
			default:
				break more
			}
		}
		inst, err := l.p.waitUp(ctx)
		if err != nil {
			return
		}
		o, ok := inst.raw.(sdk.RoomObserver)
		if !ok {
			l.cs.unsupported.Store(true)
			return
		}
		send := batch
		if inst != sentTo || l.cs.roomsLost.Swap(false) {
			if f := l.cs.snapshot.Load(); f != nil && *f != nil {
				// The snapshot already reflects every queued change.
				send = (*f)()
				for len(l.cs.rooms) > 0 {
					<-l.cs.rooms
				}
			}
		}
		if len(send) == 0 {
			sentTo, batch = inst, batch[:0]
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, l.p.spec.CallTimeout)
		err = o.RoomsChanged(cctx, send)
		cancel()
		switch {
		case err == nil:
			sentTo, batch = inst, batch[:0]
		case errors.Is(err, sdk.ErrUnsupported):
			l.cs.unsupported.Store(true)
			return
		default:
			// Resend the whole snapshot once the plugin answers again.
			sentTo, batch = nil, batch[:0]
			l.p.log.WithField("error", err.Error()).Warn("adapter: reporting room changes failed; will resend all rooms")
			if !sleepCtx(ctx, l.p.host.opts.BackoffMin) {
				return
			}
		}
	}
}

// Degraded is the reason the plugin last gave for not doing its job fully
// (sdk.StatusReporter), "" when it is fine or does not report.
func (p *Plugin) Degraded() string {
	if s := p.degraded.Load(); s != nil {
		return *s
	}
	return ""
}

// PluginMetrics asks the plugin for its own metrics (sdk.StatusReporter),
// bounded by CallTimeout; nil when it is down or reports none.
func (p *Plugin) PluginMetrics(ctx context.Context) *sdk.MetricsSnapshot {
	inst := p.live()
	if inst == nil || inst.noStatus.Load() {
		return nil
	}
	st, err := p.status(ctx, inst)
	if err != nil {
		return nil
	}
	return &st.Metrics
}

// pollStatus refreshes Degraded; watch calls it every HealthInterval.
func (p *Plugin) pollStatus(inst *instance) {
	if inst.noStatus.Load() {
		return
	}
	st, err := p.status(p.host.ctx, inst)
	if err != nil {
		return // liveness is ping's business; keep the last answer
	}
	if st.Degraded != p.Degraded() {
		if st.Degraded != "" {
			p.log.WithField("reason", st.Degraded).Warn("plugin degraded")
		} else {
			p.log.Info("plugin no longer degraded")
		}
	}
	p.degraded.Store(&st.Degraded)
}

func (p *Plugin) status(ctx context.Context, inst *instance) (sdk.Status, error) {
	r, ok := inst.raw.(sdk.StatusReporter)
	if !ok {
		inst.noStatus.Store(true)
		return sdk.Status{}, sdk.ErrUnsupported
	}
	ctx, cancel := context.WithTimeout(ctx, p.spec.CallTimeout)
	defer cancel()
	st, err := r.Status(ctx)
	if errors.Is(err, sdk.ErrUnsupported) {
		inst.noStatus.Store(true)
	}
	return st, err
}

// clearDegraded forgets the last status (a new process says its own).
func (p *Plugin) clearDegraded() {
	empty := ""
	p.degraded.Store(&empty)
}
