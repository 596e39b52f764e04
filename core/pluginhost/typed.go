package pluginhost

import (
	"context"
	"fmt"

	"github.com/socketfleet/socketfleet/sdk"
)

// The typed accessors return values that always call the live process (so
// they survive restarts), with CallTimeout per call, failing fast with an
// error wrapping ErrUnavailable while the plugin is down. Info and
// ConfigSchema answer from what the plugin said at launch; Configure is
// Plugin.Configure (remembered, re-applied after restarts).

// Authenticator returns the auth plugin's interface. A Go error from it
// means "could not decide": the core must fail closed.
func (p *Plugin) Authenticator() sdk.Authenticator { return authClient{lifecycle{p}} }

// Sharder returns the sharding plugin's interface.
func (p *Plugin) Sharder() sdk.Sharder { return sharderClient{lifecycle{p}} }

// MetricsExporter returns the metrics plugin's interface.
func (p *Plugin) MetricsExporter() sdk.MetricsExporter { return metricsClient{lifecycle{p}} }

type lifecycle struct{ p *Plugin }

func (l lifecycle) Info() sdk.Info                                    { return l.p.info }
func (l lifecycle) ConfigSchema() sdk.Schema                          { return l.p.schema }
func (l lifecycle) Configure(ctx context.Context, c sdk.Config) error { return l.p.Configure(ctx, c) }

func wrongKind(p *Plugin, raw sdk.Plugin, want string) error {
	return fmt.Errorf("plugin %s: the sdk's %q client (%T) does not implement %s", p.id, p.spec.Kind, raw, want)
}

type authClient struct{ lifecycle }

func (c authClient) Authenticate(ctx context.Context, req *sdk.AuthRequest) (*sdk.AuthDecision, error) {
	var out *sdk.AuthDecision
	err := c.p.call(ctx, "Authenticate", func(ctx context.Context, raw sdk.Plugin) error {
		a, ok := raw.(sdk.Authenticator)
		if !ok {
			return wrongKind(c.p, raw, "sdk.Authenticator")
		}
		var err error
		out, err = a.Authenticate(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

type sharderClient struct{ lifecycle }

func (c sharderClient) Assign(ctx context.Context, userID string) (*sdk.Assignment, error) {
	var out *sdk.Assignment
	err := c.p.call(ctx, "Assign", func(ctx context.Context, raw sdk.Plugin) error {
		s, ok := raw.(sdk.Sharder)
		if !ok {
			return wrongKind(c.p, raw, "sdk.Sharder")
		}
		var err error
		out, err = s.Assign(ctx, userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

type metricsClient struct{ lifecycle }

func (c metricsClient) Render(ctx context.Context, snap *sdk.MetricsSnapshot) (string, []byte, error) {
	var (
		ct   string
		body []byte
	)
	err := c.p.call(ctx, "Render", func(ctx context.Context, raw sdk.Plugin) error {
		m, ok := raw.(sdk.MetricsExporter)
		if !ok {
			return wrongKind(c.p, raw, "sdk.MetricsExporter")
		}
		var err error
		ct, body, err = m.Render(ctx, snap)
		return err
	})
	if err != nil {
		return "", nil, err
	}
	return ct, body, nil
}
