package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/internal/inproc"
)

// connect serves p in-process behind the real shims and returns its client.
func connect(t testing.TB, p sdk.Plugin, opts ...grpc.ServerOption) sdk.Plugin {
	t.Helper()
	c, err := inproc.Connect(p, opts...)
	if err != nil {
		t.Fatalf("connect %T: %v", p, err)
	}
	t.Cleanup(c.Close)
	return c.Client
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestLifecycleRoundTrip(t *testing.T) {
	impls := map[sdk.Kind]interface {
		sdk.Plugin
		config() sdk.Config
	}{
		sdk.KindAuth:     newFakeAuth(),
		sdk.KindAdapter:  &scriptedAdapter{fakeBase: fakeBase{kind: sdk.KindAdapter}},
		sdk.KindSharding: &fakeSharder{fakeBase: fakeBase{kind: sdk.KindSharding}},
		sdk.KindMetrics:  &fakeMetrics{fakeBase: fakeBase{kind: sdk.KindMetrics}},
		sdk.KindLogSink:  &fakeLogSink{fakeBase: fakeBase{kind: sdk.KindLogSink}},
	}
	for _, kind := range sdk.Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			impl := impls[kind]
			c := connect(t, impl)
			if got, want := c.Info(), impl.Info(); got != want {
				t.Errorf("Info = %+v, want %+v", got, want)
			}
			if got := c.ConfigSchema(); !reflect.DeepEqual(got, fullSchema) {
				t.Errorf("ConfigSchema = %+v, want %+v", got, fullSchema)
			}
			cfg := sdk.Config(`{"s":"x","n":1.5,"b":true,"l":["a"],"m":{"k":"v"},"d":"1s","z":1024}`)
			if err := c.Configure(ctxT(t), cfg); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			if got := impl.config(); string(got) != string(cfg) {
				t.Errorf("plugin got config %s, want %s", got, cfg)
			}
			if err := c.Configure(ctxT(t), nil); err != nil {
				t.Fatalf("Configure(nil): %v", err)
			}
			if got := impl.config(); got != nil {
				t.Errorf("plugin got config %q for nil, want nil", got)
			}
			// The client implements the kind's interface.
			if k, err := sdk.KindOf(c); err != nil || k != kind {
				t.Errorf("KindOf(client) = %q, %v; want %q", k, err, kind)
			}
		})
	}
}

// The config folder the host puts on Configure's ctx reaches the plugin's
// Configure, where ResolvePath uses it; without one, paths stay as written.
func TestConfigureCarriesConfigDir(t *testing.T) {
	var got []string
	f := &dirAuth{fakeAuth: newFakeAuth(), got: &got}
	c := connect(t, f)
	if err := c.Configure(sdk.WithConfigDir(ctxT(t), "/etc/socketfleet"), sdk.Config(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.Configure(ctxT(t), sdk.Config(`{}`)); err != nil {
		t.Fatal(err)
	}
	want := []string{"/etc/socketfleet", "/etc/socketfleet/keys/a.pem", "/abs.pem", "", "keys/a.pem", "/abs.pem"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plugin saw %q, want %q", got, want)
	}
}

// dirAuth records, at each Configure, the config folder and how two paths resolve.
type dirAuth struct {
	*fakeAuth
	got *[]string
}

func (d *dirAuth) Configure(ctx context.Context, cfg sdk.Config) error {
	*d.got = append(*d.got, sdk.ConfigDir(ctx), sdk.ResolvePath(ctx, "keys/a.pem"), sdk.ResolvePath(ctx, "/abs.pem"))
	return nil
}

func TestConfigureError(t *testing.T) {
	f := newFakeAuth()
	f.configureErr = fmt.Errorf("secret: %w", errors.New("must be at least 32 bytes"))
	err := connect(t, f).Configure(ctxT(t), sdk.Config(`{}`))
	var pe *sdk.PluginError
	if !errors.As(err, &pe) {
		t.Fatalf("Configure error %v (%T) is not a *sdk.PluginError", err, err)
	}
	if pe.Kind != sdk.KindAuth || pe.Method != "Configure" || pe.Message != "secret: must be at least 32 bytes" {
		t.Errorf("PluginError = %+v", pe)
	}
	if got, want := err.Error(), "auth plugin: Configure: secret: must be at least 32 bytes"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// An error about one attribute crosses the boundary with the attribute's
// name, so the host can point at it; wrapped, it still does.
func TestConfigureAttributeError(t *testing.T) {
	f := newFakeAuth()
	f.configureErr = fmt.Errorf("loading keys: %w", sdk.AttrError("keys_file", "cannot read keys.txt: no such file"))
	err := connect(t, f).Configure(ctxT(t), sdk.Config(`{}`))
	var pe *sdk.PluginError
	if !errors.As(err, &pe) {
		t.Fatalf("Configure error %v (%T) is not a *sdk.PluginError", err, err)
	}
	if pe.Attribute != "keys_file" || pe.Message != "cannot read keys.txt: no such file" || status.Code(err) != codes.InvalidArgument {
		t.Errorf("PluginError = %+v, code %v", pe, status.Code(err))
	}
	if got, want := err.Error(), "auth plugin: Configure: keys_file: cannot read keys.txt: no such file"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestAuthRoundTrip(t *testing.T) {
	f := newFakeAuth()
	a := connect(t, f).(sdk.Authenticator)
	req := &sdk.AuthRequest{
		Namespace:  "/chat",
		Auth:       json.RawMessage(`{"token":"abc","n":[1,2]}`),
		Headers:    map[string]string{"authorization": "Bearer abc", "user-agent": "x"},
		Query:      map[string]string{"EIO": "4", "room": "a b"},
		RemoteAddr: "10.1.2.3:4567",
	}
	f.decision = &sdk.AuthDecision{
		Allow:  true,
		UserID: "user-42",
		Rooms:  []string{"user:42", "team:7"},
		Data:   json.RawMessage(`{"role":"admin","z":1,"a":2}`),
		// The secrets the socket does not keep cross with the decision.
		RedactAuth: []string{"token", "password"},
	}
	d, err := a.Authenticate(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.request(), req) {
		t.Errorf("plugin got %+v, want %+v", f.request(), req)
	}
	if !reflect.DeepEqual(d, f.decision) {
		t.Errorf("host got %+v, want %+v", d, f.decision)
	}

	// A refusal is a decision, not an error.
	f.decision = &sdk.AuthDecision{Message: "token expired", ErrorData: json.RawMessage(`{"code":401}`)}
	d, err = a.Authenticate(ctxT(t), &sdk.AuthRequest{Namespace: "/"})
	if err != nil {
		t.Fatalf("refusal came back as error %v", err)
	}
	if !reflect.DeepEqual(d, f.decision) {
		t.Errorf("refusal = %+v, want %+v", d, f.decision)
	}
	if got := f.request(); got.Auth != nil || got.Headers != nil || got.Query != nil {
		t.Errorf("empty fields arrived as %+v, want nil", got)
	}
}

func TestAuthErrors(t *testing.T) {
	f := newFakeAuth()
	a := connect(t, f).(sdk.Authenticator)
	for _, c := range []struct {
		name     string
		decision *sdk.AuthDecision
		err      error
		code     codes.Code
		msg      string
		is       error
	}{
		{"plain", nil, errors.New("jwks: fetch failed"), codes.Unknown, "jwks: fetch failed", nil},
		{"status kept", nil, status.Error(codes.Unavailable, "redis down"), codes.Unavailable, "redis down", nil},
		{"wrapped status", nil, fmt.Errorf("lookup: %w", status.Error(codes.PermissionDenied, "nope")), codes.PermissionDenied, "lookup: rpc error: code = PermissionDenied desc = nope", nil},
		{"deadline", nil, fmt.Errorf("introspect: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "introspect: context deadline exceeded", context.DeadlineExceeded},
		{"canceled", nil, context.Canceled, codes.Canceled, "context canceled", context.Canceled},
		{"no decision", nil, nil, codes.Internal, "Authenticate returned neither a decision nor an error", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.decision, f.err = c.decision, c.err
			d, err := a.Authenticate(ctxT(t), &sdk.AuthRequest{Namespace: "/"})
			if err == nil {
				t.Fatalf("got decision %+v, want error", d)
			}
			var pe *sdk.PluginError
			if !errors.As(err, &pe) {
				t.Fatalf("%v (%T) is not a *sdk.PluginError", err, err)
			}
			if pe.Message != c.msg || pe.Kind != sdk.KindAuth || pe.Method != "Authenticate" {
				t.Errorf("PluginError = %+v, want message %q", pe, c.msg)
			}
			if got := status.Code(fmt.Errorf("host: %w", err)); got != c.code {
				t.Errorf("status.Code = %v, want %v", got, c.code)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, c.is)
			}
		})
	}

	// The host's own deadline.
	f.decision, f.err = &sdk.AuthDecision{Allow: true}, nil
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Authenticate(ctx, &sdk.AuthRequest{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v, want context.Canceled", err)
	}
}

func TestShardingRoundTrip(t *testing.T) {
	f := &fakeSharder{fakeBase: fakeBase{kind: sdk.KindSharding}, gotUser: make(chan string, 1)}
	s := connect(t, f).(sdk.Sharder)
	f.assignment = &sdk.Assignment{Shard: 1 << 40, Local: true, URL: "wss://s7.example/socket.io/"}
	got, err := s.Assign(ctxT(t), "user-ü")
	if err != nil {
		t.Fatal(err)
	}
	if u := <-f.gotUser; u != "user-ü" {
		t.Errorf("plugin got user %q", u)
	}
	if *got != *f.assignment {
		t.Errorf("Assign = %+v, want %+v", got, f.assignment)
	}
	f.assignment, f.err = nil, errors.New("ring empty")
	if _, err := s.Assign(ctxT(t), "u"); err == nil || !strings.Contains(err.Error(), "sharding plugin: Assign: ring empty") {
		t.Errorf("Assign error = %v", err)
	}
	<-f.gotUser
	f.err = nil
	if _, err := s.Assign(ctxT(t), "u"); status.Code(err) != codes.Internal {
		t.Errorf("nil assignment: %v, want Internal", err)
	}
}

func TestMetricsRoundTrip(t *testing.T) {
	f := &fakeMetrics{fakeBase: fakeBase{kind: sdk.KindMetrics}, got: make(chan *sdk.MetricsSnapshot, 1)}
	m := connect(t, f).(sdk.MetricsExporter)
	snap := &sdk.MetricsSnapshot{
		Counters: []sdk.MetricSample{
			{Name: "a_total", Help: "A.", Labels: []sdk.MetricLabel{{Name: "ns", Value: "/"}, {Name: "x", Value: "y"}}, Value: 1e12},
			{Name: "b_total", Value: 0},
		},
		Gauges: []sdk.MetricSample{{Name: "g", Help: "G.", Value: -2.5}},
		Histograms: []sdk.MetricHistogram{{
			Name: "h", Help: "H.", Labels: []sdk.MetricLabel{{Name: "t", Value: "ws"}},
			Bounds: []float64{0.005, 0.5, 5}, Counts: []uint64{1, 2, 3}, Count: 4, Sum: 9.25,
		}},
	}
	ct, body, err := m.Render(ctxT(t), snap)
	if err != nil {
		t.Fatal(err)
	}
	if got := <-f.got; !reflect.DeepEqual(got, snap) {
		t.Errorf("plugin got %+v, want %+v", got, snap)
	}
	if ct != "text/plain; version=0.0.4" || string(body) != "# body\n" {
		t.Errorf("Render = %q, %q", ct, body)
	}
	if _, _, err := m.Render(ctxT(t), &sdk.MetricsSnapshot{}); err != nil {
		t.Fatal(err)
	}
	if got := <-f.got; !reflect.DeepEqual(got, &sdk.MetricsSnapshot{}) {
		t.Errorf("empty snapshot arrived as %+v", got)
	}
	f.err = errors.New("template broken")
	if _, _, err := m.Render(ctxT(t), snap); err == nil || err.Error() != "metrics plugin: Render: template broken" {
		t.Errorf("Render error = %v", err)
	}
}

func TestLogSinkRoundTrip(t *testing.T) {
	f := &fakeLogSink{fakeBase: fakeBase{kind: sdk.KindLogSink}, got: make(chan []sdk.LogEntry, 1), flushes: make(chan struct{}, 1)}
	s := connect(t, f).(sdk.LogSink)
	at := time.Date(2026, 11, 27, 6, 4, 5, 123456789, time.FixedZone("CET", 3600))
	batch := []sdk.LogEntry{
		{Time: at, Level: "info", Message: "socket connected", Fields: json.RawMessage(`{"sid":"abc","n":1}`)},
		{Level: "error", Message: "no time, no fields"},
	}
	if err := s.Write(ctxT(t), batch); err != nil {
		t.Fatal(err)
	}
	got := <-f.got
	if len(got) != 2 {
		t.Fatalf("plugin got %d entries", len(got))
	}
	if !got[0].Time.Equal(at) || !got[1].Time.IsZero() {
		t.Errorf("times arrived as %v, %v", got[0].Time, got[1].Time)
	}
	for i := range got {
		got[i].Time = batch[i].Time
	}
	if !reflect.DeepEqual(got, batch) {
		t.Errorf("plugin got %+v, want %+v", got, batch)
	}
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	<-f.flushes
	f.writeErr = status.Error(codes.ResourceExhausted, "bulk queue full")
	err := s.Write(ctxT(t), batch)
	<-f.got
	if status.Code(err) != codes.ResourceExhausted || err.Error() != "log_sink plugin: Write: bulk queue full" {
		t.Errorf("Write error = %v", err)
	}
	f.flushErr = errors.New("es unreachable")
	err = s.Flush(ctxT(t))
	<-f.flushes
	if err == nil || err.Error() != "log_sink plugin: Flush: es unreachable" {
		t.Errorf("Flush error = %v", err)
	}
	if err := s.Write(ctxT(t), nil); err != nil {
		t.Errorf("empty Write: %v", err)
	}
}
