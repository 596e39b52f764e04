// Package pluginhost launches, checks, supervises and restarts the core's
// plugins: go-plugin subprocesses speaking gRPC with AutoMTLS (docs/architecture.md, "The plugin boundary").
//
// A Host owns every plugin process. Launch finds and verifies the binary,
// starts it, checks its Info (kind, name, protocol version) and fetches its
// config schema. A supervisor goroutine per plugin watches the process (exit
// and a periodic gRPC health check) and restarts it with exponential backoff,
// re-applying the remembered Configure. The typed accessors (Authenticator,
// Sharder, MetricsExporter) always call the live process with a per-call
// timeout and fail fast with ErrUnavailable while it is down; ClusterLink and
// LogBuffer put bounded queues in front of the adapter and log sink kinds so
// that nothing crosses the boundary per message.
package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/sdk"
)

// ErrUnavailable is wrapped by every error returned while a plugin is down
// (or died during the call).
var ErrUnavailable = errors.New("plugin unavailable")

// Defaults; DefaultDir and DefaultCallTimeout are also config.hcl's
// defaults for plugin_dir and call_timeout (core/config reads them here).
const (
	DefaultDir            = "bin/plugins"
	DefaultCallTimeout    = 2 * time.Second
	DefaultBackoffMin     = 100 * time.Millisecond
	DefaultBackoffMax     = 2 * time.Second
	DefaultHealthInterval = time.Second
	// DefaultStartTimeout bounds the go-plugin handshake of one launch.
	DefaultStartTimeout = 10 * time.Second
	// backoffReset: a plugin that stayed up this long restarts from BackoffMin again.
	backoffReset = 30 * time.Second
)

// Spec says which plugin to launch and how to find it.
type Spec struct {
	Kind sdk.Kind
	Name string // block label, e.g. "jwt"
	// Command is an explicit path from config (config resolves a relative
	// one against the config file's folder); "" looks up
	// <Dir>/<kind>-<name> (kind "log_sink" → "logsink-<name>").
	Command string
	Dir     string // plugin directory, default "bin/plugins"
	SHA256  string // optional hex pin, verified before every launch
	// ConfigDir is the folder of the config file the block came from; the
	// plugin gets it at Configure to resolve its own relative paths.
	ConfigDir string
	// CallTimeout bounds every call into the plugin (default 2s).
	CallTimeout time.Duration
	// Where names the config block, e.g. `auth "jwt" block at config.hcl:12:1`;
	// every error message starts with it.
	Where string
}

// Options configure a Host.
type Options struct {
	Log            *logrus.Entry
	BackoffMin     time.Duration // default 100ms
	BackoffMax     time.Duration // default 2s
	HealthInterval time.Duration // default 1s
	StartTimeout   time.Duration // go-plugin handshake timeout, default 10s
	// SkipHostEnv starts plugins with an empty environment instead of the
	// core's (go-plugin's own variables are always set).
	SkipHostEnv bool
	// Quiet logs what plugins and go-plugin say at debug (validate: only
	// diagnostics are printed; start-up errors still carry the plugin's last
	// stderr lines).
	Quiet bool
}

// State is a plugin's supervision state (for /ready and logs).
type State struct {
	Kind      string
	Name      string
	Up        bool
	Restarts  int
	PID       int // of the live process, 0 while down
	LastError string
	Since     time.Time // time of the last transition (up or down)
}

// Host owns the plugin processes.
type Host struct {
	opts   Options
	log    *logrus.Entry
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	plugins []*Plugin
	once    sync.Once
}

// New returns a Host. Close it to stop every plugin.
func New(opts Options) *Host {
	if opts.Log == nil {
		opts.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = DefaultBackoffMin
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultBackoffMax
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = opts.BackoffMin
	}
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = DefaultHealthInterval
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Host{opts: opts, log: opts.Log, ctx: ctx, cancel: cancel}
}

// Launch starts the plugin described by spec, checks its Info and fetches
// its schema, then supervises it until Close. It does not Configure it: the
// core decodes the plugin's block with Schema() and calls Configure.
func (h *Host) Launch(ctx context.Context, spec Spec) (*Plugin, error) {
	spec = spec.withDefaults()
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%s: plugin host is closed", spec.Where)
	}
	path, sum, err := resolveBinary(spec)
	if err != nil {
		return nil, err
	}
	p := newPlugin(h, spec, path, sum)
	inst, err := p.start(ctx)
	if err != nil {
		return nil, err
	}
	p.info, p.schema = inst.info, inst.schema

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		inst.kill(false)
		return nil, fmt.Errorf("%s: plugin host is closed", spec.Where)
	}
	h.plugins = append(h.plugins, p)
	h.wg.Add(1)
	h.mu.Unlock()

	p.setUp(inst, false)
	p.log.WithField("pid", inst.pid).WithField("version", inst.info.Version).Info("plugin started")
	go p.supervise()
	return p, nil
}

// States returns the state of every launched plugin, sorted by kind and name.
func (h *Host) States() []State {
	ps := h.list()
	out := make([]State, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.State())
	}
	return out
}

// Stats returns the counters of every launched plugin, sorted by kind and name.
func (h *Host) Stats() []Stats {
	ps := h.list()
	out := make([]Stats, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Stats())
	}
	return out
}

func (h *Host) list() []*Plugin {
	h.mu.Lock()
	ps := append([]*Plugin(nil), h.plugins...)
	h.mu.Unlock()
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].spec.Kind != ps[j].spec.Kind {
			return ps[i].spec.Kind < ps[j].spec.Kind
		}
		return ps[i].spec.Name < ps[j].spec.Name
	})
	return ps
}

// Close stops the supervisors, the links and buffers, and every plugin
// process (go-plugin Kill: graceful, then SIGKILL after 2s). It returns once
// every child has exited. Idempotent.
func (h *Host) Close() {
	h.once.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		h.cancel()
		h.wg.Wait()
	})
}

func (s Spec) withDefaults() Spec {
	if s.Dir == "" {
		s.Dir = DefaultDir
	}
	if s.CallTimeout <= 0 {
		s.CallTimeout = DefaultCallTimeout
	}
	if s.Where == "" {
		s.Where = fmt.Sprintf("%s %q block", s.Kind, s.Name)
	}
	return s
}
