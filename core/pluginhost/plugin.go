package pluginhost

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/socketfleet/socketfleet/sdk"
)

// Plugin is one supervised plugin process (and its successors after
// restarts).
type Plugin struct {
	host   *Host
	spec   Spec
	path   string
	sum    []byte // sha256 pin, nil when none
	id     string // "<kind>.<name>"
	log    *logrus.Entry
	info   sdk.Info
	schema sdk.Schema

	// cfgMu serializes Configure with the supervisor's re-configure of a
	// fresh process, so a restart never applies a stale config.
	cfgMu      sync.Mutex
	cfg        sdk.Config
	configured bool
	// restartHooks run on a fresh process after its Configure, before it
	// is made live (e.g. the adapter's EnableRecovery).
	restartHooks []func(context.Context, sdk.Plugin) error

	mu      sync.Mutex
	cur     *instance // nil while down
	changed chan struct{}
	state   State

	stats    callStats
	degraded atomic.Pointer[string] // the last Status's Degraded
}

// instance is one running process.
type instance struct {
	client  *plugin.Client
	conn    *grpc.ClientConn // for health checks; nil if the transport is not gRPC
	raw     sdk.Plugin       // the dispensed kind client
	info    sdk.Info
	schema  sdk.Schema
	pid     int
	started time.Time
	// stopping is set when the host stops the process on purpose: go-plugin's
	// own lines about it ("failed to exit gracefully", "process exited" with
	// the kill signal) are then debug, not alarms.
	stopping *atomic.Bool

	deadOnce sync.Once
	dead     chan struct{} // closed when declared dead
	noStatus atomic.Bool   // the plugin reports no Status
}

func (in *instance) markDead() { in.deadOnce.Do(func() { close(in.dead) }) }

func (in *instance) isDead() bool {
	select {
	case <-in.dead:
		return true
	default:
		return in.client.Exited()
	}
}

// kill stops the process. hard sends SIGKILL first (a dead, hung or
// unhealthy plugin). Otherwise go-plugin's Kill asks the plugin to exit and
// SIGKILLs it after 2s; its shutdown RPC has no deadline of its own, so a
// plugin that does not answer at all (stopped, wedged) is SIGKILLed after
// gracefulKill. Either way kill returns once the process has exited.
func (in *instance) kill(hard bool) {
	in.stopping.Store(true)
	in.markDead()
	if hard {
		in.sigkill()
		in.client.Kill()
		return
	}
	done := make(chan struct{})
	go func() {
		in.client.Kill()
		close(done)
	}()
	t := time.NewTimer(gracefulKill)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		in.sigkill()
		<-done
	}
}

const gracefulKill = 3 * time.Second

func (in *instance) sigkill() {
	if in.pid > 0 && !in.client.Exited() {
		_ = syscall.Kill(in.pid, syscall.SIGKILL)
	}
}

func newPlugin(h *Host, spec Spec, path string, sum []byte) *Plugin {
	id := string(spec.Kind) + "." + spec.Name
	p := &Plugin{
		host:    h,
		spec:    spec,
		path:    path,
		sum:     sum,
		id:      id,
		log:     h.log.WithField("plugin", id),
		changed: make(chan struct{}),
	}
	p.state = State{Kind: string(spec.Kind), Name: spec.Name}
	p.stats.init()
	return p
}

// start launches one process and checks it. On error nothing is left running.
func (p *Plugin) start(ctx context.Context) (*instance, error) {
	if err := checkBinary(p.spec, p.path, p.sum); err != nil {
		return nil, err
	}
	cmd := exec.Command(p.path)
	setProcAttr(cmd)
	tail := &tailWriter{} // the plugin's last stderr lines, for start errors
	var secure *plugin.SecureConfig
	if p.sum != nil {
		// Checked again by go-plugin right before exec.
		secure = &plugin.SecureConfig{Checksum: p.sum, Hash: sha256.New()}
	}
	stopping := new(atomic.Bool)
	outLevel, errLevel := logrus.InfoLevel, logrus.WarnLevel
	if p.host.opts.Quiet {
		outLevel, errLevel = logrus.DebugLevel, logrus.DebugLevel
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake(),
		Plugins:          sdk.HostPlugins(),
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           newHCLogger(p.log, p.host.opts.Quiet, stopping),
		SyncStdout:       newLineWriter(p.log, outLevel, "stdout"),
		SyncStderr:       newLineWriter(p.log, errLevel, "stderr"),
		Stderr:           tail,
		StartTimeout:     p.host.opts.StartTimeout,
		SkipHostEnv:      p.host.opts.SkipHostEnv,
	})
	inst := &instance{client: client, dead: make(chan struct{}), started: time.Now(), stopping: stopping}
	fail := func(err error) (*instance, error) {
		inst.kill(true)
		return nil, err
	}

	// go-plugin's Start is not context-aware: run it aside and kill the
	// process if ctx ends first.
	type result struct {
		rpc plugin.ClientProtocol
		err error
	}
	done := make(chan result, 1)
	go func() {
		rpc, err := client.Client()
		done <- result{rpc, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		client.Kill()
		<-done
		return nil, fmt.Errorf("%s: starting plugin %s: %w", p.spec.Where, p.path, ctx.Err())
	}
	if cmd.Process != nil {
		inst.pid = cmd.Process.Pid
	}
	if res.err != nil {
		inst.kill(true) // also waits for go-plugin to read the rest of stderr
		return nil, p.startError(res.err, tail.String())
	}
	if g, ok := res.rpc.(*plugin.GRPCClient); ok {
		inst.conn = g.Conn
	}
	raw, err := res.rpc.Dispense(string(p.spec.Kind))
	if err != nil {
		inst.kill(true)
		return nil, fmt.Errorf("%s: plugin %s: %v%s", p.spec.Where, p.path, err, tail.String())
	}
	sp, ok := raw.(sdk.Plugin)
	if !ok {
		return fail(fmt.Errorf("%s: plugin %s: the sdk's %q client does not implement sdk.Plugin (%T)", p.spec.Where, p.path, p.spec.Kind, raw))
	}
	inst.raw = sp

	// Info and ConfigSchema take no context: bound them by killing the
	// process if they hang, which fails the call.
	if !p.bounded(inst, func() { inst.info = sp.Info() }) {
		return fail(fmt.Errorf("%s: plugin %s did not answer Info within %s", p.spec.Where, p.path, p.spec.CallTimeout))
	}
	if err := p.checkInfo(inst.info); err != nil {
		return fail(err)
	}
	if !p.bounded(inst, func() { inst.schema = sp.ConfigSchema() }) {
		return fail(fmt.Errorf("%s: plugin %s did not answer ConfigSchema within %s", p.spec.Where, p.path, p.spec.CallTimeout))
	}
	return inst, nil
}

func (p *Plugin) bounded(inst *instance, fn func()) bool {
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	t := time.NewTimer(p.spec.CallTimeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		inst.kill(true) // fails the call, so the goroutine ends
		<-done
		return false
	}
}

func (p *Plugin) startError(err error, stderr string) error {
	// go-plugin's messages can run over many lines of generic advice: keep
	// the first, and let the plugin's own stderr say what went wrong.
	msg, _, _ := strings.Cut(strings.TrimSpace(err.Error()), "\n")
	msg = strings.TrimSpace(msg)
	if strings.HasSuffix(msg, ":") {
		msg = strings.TrimSuffix(msg, ":") + " (it printed no handshake line)"
	}
	lower := strings.ToLower(msg)
	msg += stderr
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return fmt.Errorf("%s: plugin binary %s: sha256 mismatch (the file changed while launching)", p.spec.Where, p.path)
	case strings.Contains(lower, "incompatible api version"):
		return fmt.Errorf("%s: plugin %s: handshake failed, wrong protocol version: %s (this server speaks plugin protocol %d; rebuild the plugin against its sdk)", p.spec.Where, p.path, msg, sdk.ProtocolVersion)
	case strings.Contains(lower, "unrecognized remote plugin message"),
		strings.Contains(lower, "exited before we could connect"),
		strings.Contains(lower, "timeout while waiting for plugin to start"),
		strings.Contains(lower, "unsupported plugin protocol"),
		strings.Contains(lower, "incompatible core api"):
		return fmt.Errorf("%s: plugin %s: handshake failed: %s (is it a socketfleet plugin built with sdk.Serve, protocol %d? its stderr is in the log)", p.spec.Where, p.path, msg, sdk.ProtocolVersion)
	}
	return fmt.Errorf("%s: plugin %s failed to start: %s", p.spec.Where, p.path, msg)
}

func (p *Plugin) checkInfo(in sdk.Info) error {
	switch {
	case in.Kind == "" && in.Name == "":
		return fmt.Errorf("%s: plugin %s answered Info with nothing (is it a %s plugin?)", p.spec.Where, p.path, p.spec.Kind)
	case in.ProtocolVersion != sdk.ProtocolVersion:
		return fmt.Errorf("%s: plugin %s speaks plugin protocol %d, this server speaks %d (rebuild it against this server's sdk)", p.spec.Where, p.path, in.ProtocolVersion, sdk.ProtocolVersion)
	case in.Kind != p.spec.Kind:
		return fmt.Errorf("%s: plugin %s is a %q plugin (named %q), not a %q plugin", p.spec.Where, p.path, in.Kind, in.Name, p.spec.Kind)
	case in.Name != p.spec.Name:
		return fmt.Errorf("%s: plugin %s calls itself %s %q, not %q", p.spec.Where, p.path, in.Kind, in.Name, p.spec.Name)
	}
	return nil
}

// Info is what the plugin answered at launch.
func (p *Plugin) Info() sdk.Info { return p.info }

// Schema is the plugin's config schema, fetched at launch.
func (p *Plugin) Schema() sdk.Schema { return p.schema }

// Configure sends cfg to the plugin and remembers it; the supervisor
// re-applies it after every restart. A config the plugin refuses is not
// remembered. While the plugin is down the config is remembered (it will be
// applied at restart) and the error wraps ErrUnavailable.
func (p *Plugin) Configure(ctx context.Context, cfg sdk.Config) error {
	p.cfgMu.Lock()
	defer p.cfgMu.Unlock()
	err := p.call(ctx, "Configure", func(ctx context.Context, raw sdk.Plugin) error {
		return raw.Configure(p.withConfigDir(ctx), cfg)
	})
	if err == nil || errors.Is(err, ErrUnavailable) {
		p.cfg = append(sdk.Config(nil), cfg...)
		p.configured = true
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p.spec.Where, err)
	}
	return nil
}

// State returns the plugin's supervision state.
func (p *Plugin) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

func (p *Plugin) live() *instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// waitUp returns the live instance, waiting for a restart if the plugin is
// down.
func (p *Plugin) waitUp(ctx context.Context) (*instance, error) {
	for {
		p.mu.Lock()
		inst, ch := p.cur, p.changed
		p.mu.Unlock()
		if inst != nil {
			return inst, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.host.ctx.Done():
			return nil, fmt.Errorf("plugin %s: host closed: %w", p.id, ErrUnavailable)
		}
	}
}

func (p *Plugin) transition() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Plugin) setUp(inst *instance, restarted bool) {
	p.clearDegraded()
	p.mu.Lock()
	p.cur = inst
	p.state.Up = true
	p.state.PID = inst.pid
	p.state.Since = time.Now()
	if restarted {
		p.state.Restarts++
		p.stats.restarts.Add(1)
	}
	p.transition()
	p.mu.Unlock()
}

func (p *Plugin) setDown(inst *instance, reason string) {
	inst.markDead()
	p.mu.Lock()
	if p.cur == inst {
		p.cur = nil
		p.state.Up = false
		p.state.PID = 0
		p.state.Since = time.Now()
	}
	p.state.LastError = reason
	p.transition()
	p.mu.Unlock()
}

func (p *Plugin) setLastError(msg string) {
	p.mu.Lock()
	p.state.LastError = msg
	p.mu.Unlock()
}

// call runs fn against the live process with CallTimeout, fails fast with
// ErrUnavailable while down, and records latency.
func (p *Plugin) call(ctx context.Context, method string, fn func(context.Context, sdk.Plugin) error) error {
	inst := p.live()
	if inst == nil {
		p.stats.unavailable.Add(1)
		return fmt.Errorf("plugin %s: %s: %w", p.id, method, ErrUnavailable)
	}
	cctx, cancel := context.WithTimeout(ctx, p.spec.CallTimeout)
	defer cancel()
	start := time.Now()
	err := fn(cctx, inst.raw)
	p.stats.observe(time.Since(start))
	if err == nil {
		return nil
	}
	// gRPC may report the deadline a moment before the context does, and
	// the plugin may answer with its own (expired) context's error first.
	cd, _ := cctx.Deadline()
	deadline := !time.Now().Before(cd) || errors.Is(cctx.Err(), context.DeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded
	switch {
	case ctx.Err() != nil:
		p.stats.errors.Add(1)
		return fmt.Errorf("plugin %s: %s: %w (%v)", p.id, method, ctx.Err(), err)
	case deadline && ownDeadline(ctx, cctx):
		p.stats.timeouts.Add(1)
		return fmt.Errorf("plugin %s: %s timed out after %s: %w", p.id, method, p.spec.CallTimeout, context.DeadlineExceeded)
	case deadline:
		p.stats.errors.Add(1)
		return fmt.Errorf("plugin %s: %s: %w (%v)", p.id, method, context.DeadlineExceeded, err)
	case inst.isDead() || status.Code(err) == codes.Unavailable:
		p.stats.unavailable.Add(1)
		return fmt.Errorf("plugin %s: %s: %w (%v)", p.id, method, ErrUnavailable, err)
	}
	p.stats.errors.Add(1)
	return fmt.Errorf("plugin %s: %s: %w", p.id, method, err)
}

// ownDeadline reports whether cctx's deadline is CallTimeout's, not the
// caller's (cctx's deadline is the earlier of the two).
func ownDeadline(parent, cctx context.Context) bool {
	cd, _ := cctx.Deadline()
	pd, ok := parent.Deadline()
	return !ok || pd.After(cd)
}

// supervise watches the live process and restarts it when it dies. It owns
// the processes: on host Close it kills the current one and returns.
func (p *Plugin) supervise() {
	defer p.host.wg.Done()
	o := p.host.opts
	backoff := o.BackoffMin
	for {
		inst := p.live()
		reason := p.watch(inst)
		if reason == "" { // host closing
			p.setDown(inst, "host closed")
			inst.kill(false)
			return
		}
		if time.Since(inst.started) >= backoffReset {
			backoff = o.BackoffMin
		}
		p.setDown(inst, reason)
		p.log.WithFields(logrus.Fields{"restarts": p.State().Restarts, "error": reason}).Warn("plugin down; restarting")
		inst.kill(true)

		for {
			if !sleepCtx(p.host.ctx, backoff) {
				return
			}
			backoff = min(backoff*2, o.BackoffMax)
			next, err := p.restart()
			if err == nil {
				st := p.State()
				p.log.WithFields(logrus.Fields{"restarts": st.Restarts, "pid": next.pid, "error": reason}).Info("plugin restarted")
				break
			}
			if p.host.ctx.Err() != nil {
				return
			}
			p.setLastError(err.Error())
			p.log.WithFields(logrus.Fields{"restarts": p.State().Restarts, "error": err.Error(), "retry_in": backoff}).Error("plugin restart failed")
		}
	}
}

// withConfigDir tells the plugin its config folder (sdk.ResolvePath).
func (p *Plugin) withConfigDir(ctx context.Context) context.Context {
	if p.spec.ConfigDir == "" {
		return ctx
	}
	return sdk.WithConfigDir(ctx, p.spec.ConfigDir)
}

// restart launches a new process, re-applies the remembered config and makes
// it the live one (under cfgMu, so a concurrent Configure lands on it).
func (p *Plugin) restart() (*instance, error) {
	inst, err := p.start(p.host.ctx)
	if err != nil {
		return nil, err
	}
	p.cfgMu.Lock()
	defer p.cfgMu.Unlock()
	if p.host.ctx.Err() != nil {
		inst.kill(false)
		return nil, p.host.ctx.Err()
	}
	if p.configured {
		ctx, cancel := context.WithTimeout(p.host.ctx, p.spec.CallTimeout)
		err := inst.raw.Configure(p.withConfigDir(ctx), p.cfg)
		cancel()
		if err != nil {
			inst.kill(true)
			return nil, fmt.Errorf("%s: re-applying config after restart: %v", p.spec.Where, err)
		}
	}
	for _, hook := range p.restartHooks {
		ctx, cancel := context.WithTimeout(p.host.ctx, p.spec.CallTimeout)
		err := hook(ctx, inst.raw)
		cancel()
		if err != nil {
			inst.kill(true)
			return nil, fmt.Errorf("%s: after restart: %v", p.spec.Where, err)
		}
	}
	p.setUp(inst, true)
	return inst, nil
}

// afterRestart adds a hook run on every fresh process after its Configure.
func (p *Plugin) afterRestart(hook func(context.Context, sdk.Plugin) error) {
	p.cfgMu.Lock()
	p.restartHooks = append(p.restartHooks, hook)
	p.cfgMu.Unlock()
}

// watch returns why inst is dead, or "" when the host is closing.
func (p *Plugin) watch(inst *instance) string {
	exited := time.NewTicker(50 * time.Millisecond)
	defer exited.Stop()
	health := time.NewTicker(p.host.opts.HealthInterval)
	defer health.Stop()
	for {
		select {
		case <-p.host.ctx.Done():
			return ""
		case <-inst.dead:
			return "plugin declared dead"
		case <-exited.C:
			if inst.client.Exited() {
				return "plugin process exited"
			}
		case <-health.C:
			if err := p.ping(inst); err != nil {
				if p.host.ctx.Err() != nil {
					return ""
				}
				if inst.client.Exited() {
					return "plugin process exited"
				}
				return "health check failed: " + err.Error()
			}
			p.pollStatus(inst)
		}
	}
}

// ping is go-plugin's health check (rpcClient.Ping) with a deadline.
func (p *Plugin) ping(inst *instance) error {
	if inst.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(p.host.ctx, p.spec.CallTimeout)
	defer cancel()
	_, err := grpc_health_v1.NewHealthClient(inst.conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
