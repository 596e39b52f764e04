package sdk_test

import (
	"context"
	"sync"

	"github.com/socketfleet/socketfleet/sdk"
)

// fakeBase is a recording lifecycle shared by the fakes of every kind.
type fakeBase struct {
	kind         sdk.Kind
	configureErr error

	mu  sync.Mutex
	cfg sdk.Config
}

func (f *fakeBase) Info() sdk.Info {
	return sdk.Info{Kind: f.kind, Name: "fake-" + string(f.kind), Version: "9.8.7", ProtocolVersion: sdk.ProtocolVersion}
}

func (f *fakeBase) ConfigSchema() sdk.Schema { return fullSchema }

func (f *fakeBase) Configure(_ context.Context, cfg sdk.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg = cfg
	return f.configureErr
}

func (f *fakeBase) config() sdk.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

// fullSchema has an attribute of every type, with every field set.
var fullSchema = sdk.Schema{Attributes: []sdk.Attribute{
	{Name: "s", Type: sdk.TypeString, Required: true, Description: "a string"},
	{Name: "n", Type: sdk.TypeNumber, Description: "a number"},
	{Name: "b", Type: sdk.TypeBool},
	{Name: "l", Type: sdk.TypeListString, Description: "a list"},
	{Name: "m", Type: sdk.TypeMapString, Required: true},
	{Name: "d", Type: sdk.TypeDuration, Description: "a duration"},
	{Name: "z", Type: sdk.TypeSize, Description: "a size"},
}}

type fakeAuth struct {
	fakeBase
	decision *sdk.AuthDecision
	err      error

	gotMu sync.Mutex
	got   *sdk.AuthRequest
}

func newFakeAuth() *fakeAuth { return &fakeAuth{fakeBase: fakeBase{kind: sdk.KindAuth}} }

func (f *fakeAuth) Authenticate(_ context.Context, req *sdk.AuthRequest) (*sdk.AuthDecision, error) {
	f.gotMu.Lock()
	f.got = req
	f.gotMu.Unlock()
	return f.decision, f.err
}

func (f *fakeAuth) request() *sdk.AuthRequest {
	f.gotMu.Lock()
	defer f.gotMu.Unlock()
	return f.got
}

type fakeSharder struct {
	fakeBase
	assignment *sdk.Assignment
	err        error
	gotUser    chan string
}

func (f *fakeSharder) Assign(_ context.Context, user string) (*sdk.Assignment, error) {
	f.gotUser <- user
	return f.assignment, f.err
}

type fakeMetrics struct {
	fakeBase
	got chan *sdk.MetricsSnapshot
	err error
}

func (f *fakeMetrics) Render(_ context.Context, snap *sdk.MetricsSnapshot) (string, []byte, error) {
	f.got <- snap
	if f.err != nil {
		return "", nil, f.err
	}
	return "text/plain; version=0.0.4", []byte("# body\n"), nil
}

type fakeLogSink struct {
	fakeBase
	got      chan []sdk.LogEntry
	flushes  chan struct{}
	writeErr error
	flushErr error
}

func (f *fakeLogSink) Write(_ context.Context, batch []sdk.LogEntry) error {
	f.got <- batch
	return f.writeErr
}

func (f *fakeLogSink) Flush(context.Context) error {
	f.flushes <- struct{}{}
	return f.flushErr
}

// scriptedAdapter lets a test decide what Publish and Subscribe do.
type scriptedAdapter struct {
	fakeBase
	publish   func(ctx context.Context, batch []sdk.AdapterMessage) error
	subscribe func(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error
}

func (a *scriptedAdapter) Publish(ctx context.Context, batch []sdk.AdapterMessage) error {
	return a.publish(ctx, batch)
}

func (a *scriptedAdapter) Subscribe(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error {
	return a.subscribe(ctx, deliver)
}
