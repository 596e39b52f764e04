package plugintest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

// Options tune CheckContract. The zero value suits a plugin that needs no
// configuration.
type Options struct {
	// Config is what Configure receives; "{}" when nil. Give a sample block
	// when the plugin has required attributes.
	Config sdk.Config
	// Echo says an adapter delivers what it publishes to its own Subscribe
	// (a loopback does; a cluster adapter that skips its own messages does
	// not). With Echo, CheckContract publishes a batch and waits for it to
	// come back intact.
	Echo bool
	// Timeout bounds each call; 5 s when zero.
	Timeout time.Duration
	// ConfigDir is the config folder Configure's ctx carries (what
	// sdk.ResolvePath resolves relative paths against), as the host sends
	// it; none when "".
	ConfigDir string
}

// CheckContract checks what every plugin of p's kind must do, in subtests:
//
//   - Info: a known kind whose interface p implements, a name, the sdk's
//     ProtocolVersion;
//   - ConfigSchema: well formed (see CheckSchema);
//   - Configure: accepts opts.Config;
//   - the kind's basics: auth answers a request with an empty payload
//     (decision or error, well-formed JSON in the decision); an adapter's
//     Subscribe runs until cancelled and Publish accepts a batch (and, with
//     opts.Echo, the batch comes back); sharding answers the same shard twice
//     for a user; metrics renders a sample snapshot; a log sink takes a batch
//     and flushes.
//
// p may be the plugin itself, or what InProcess or Subprocess returned.
func CheckContract(t *testing.T, p sdk.Plugin, opts Options) {
	t.Helper()
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Config == nil {
		opts.Config = sdk.Config("{}")
	}
	info := p.Info()
	t.Run("Info", func(t *testing.T) {
		if !slices.Contains(sdk.Kinds(), info.Kind) {
			t.Fatalf("Info().Kind = %q, not one of %q", info.Kind, sdk.Kinds())
		}
		if info.Name == "" {
			t.Error("Info().Name is empty: it is the block label that selects the plugin")
		}
		if info.ProtocolVersion != sdk.ProtocolVersion {
			t.Errorf("Info().ProtocolVersion = %d, want sdk.ProtocolVersion (%d)", info.ProtocolVersion, sdk.ProtocolVersion)
		}
		if k, err := sdk.KindOf(p); err != nil {
			t.Error(err)
		} else if k != info.Kind {
			t.Errorf("serves kind %q, Info says %q", k, info.Kind)
		}
	})
	t.Run("ConfigSchema", func(t *testing.T) { CheckSchema(t, p.ConfigSchema()) })
	if !t.Run("Configure", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
		defer cancel()
		if opts.ConfigDir != "" {
			ctx = sdk.WithConfigDir(ctx, opts.ConfigDir)
		}
		if err := p.Configure(ctx, opts.Config); err != nil {
			t.Fatalf("Configure(%s): %v", opts.Config, err)
		}
	}) {
		return // the kind's checks need a configured plugin
	}
	t.Run(string(info.Kind), func(t *testing.T) {
		switch info.Kind {
		case sdk.KindAuth:
			checkAuthBasics(t, p.(sdk.Authenticator), opts)
		case sdk.KindAdapter:
			checkAdapterBasics(t, p.(sdk.Adapter), opts)
		case sdk.KindSharding:
			checkShardingBasics(t, p.(sdk.Sharder), opts)
		case sdk.KindMetrics:
			checkMetricsBasics(t, p.(sdk.MetricsExporter), opts)
		case sdk.KindLogSink:
			checkLogSinkBasics(t, p.(sdk.LogSink), opts)
		}
	})
}

// knownTypes are the attribute types the core can decode.
var knownTypes = []sdk.AttrType{
	sdk.TypeString, sdk.TypeNumber, sdk.TypeBool, sdk.TypeListString,
	sdk.TypeMapString, sdk.TypeDuration, sdk.TypeSize,
}

// CheckSchema reports (with t.Errorf) attributes without a valid name (an
// HCL identifier: a letter or underscore, then letters, digits, _ or -),
// duplicate names and unknown types.
func CheckSchema(t testing.TB, s sdk.Schema) {
	t.Helper()
	seen := map[string]bool{}
	for i, a := range s.Attributes {
		if !validName(a.Name) {
			t.Errorf("attribute %d: name %q is not an HCL identifier", i, a.Name)
		}
		if seen[a.Name] {
			t.Errorf("attribute %d: name %q appears twice", i, a.Name)
		}
		seen[a.Name] = true
		if !slices.Contains(knownTypes, a.Type) {
			t.Errorf("attribute %q: unknown type %q (want one of %q)", a.Name, a.Type, knownTypes)
		}
	}
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		letter := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if i == 0 && !letter {
			return false
		}
		if !letter && r != '-' && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// AuthCase is one handshake for CheckAuth and the answer it expects.
type AuthCase struct {
	Name    string
	Request sdk.AuthRequest
	// Rooms, if not nil, are the rooms the socket must join, in any order
	// (set []string{} to require none).
	Rooms []string
	// Data, if not nil, is the JSON object the socket must carry, compared
	// as JSON (`{}` also matches a decision without Data, as the core does).
	Data json.RawMessage
	// Message, if set, is the refusal message the client must receive.
	Message string
	Allow   bool   // the expected decision
	UserID  string // if set, the UserID an allowed socket must get
	Err     bool   // expect a Go error (the plugin could not decide) instead of a decision
	// Redact lists CONNECT payload fields an allowed socket's decision must
	// name in RedactAuth (the secrets it came with).
	Redact []string
}

// CheckAuth runs each case as a subtest against a.
func CheckAuth(t *testing.T, a sdk.Authenticator, cases ...AuthCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req := c.Request
			d, err := a.Authenticate(ctx, &req)
			switch {
			case c.Err && err == nil:
				t.Fatalf("got decision %+v, want an error", d)
			case c.Err:
				return
			case err != nil:
				t.Fatalf("Authenticate: %v", err)
			case d == nil:
				t.Fatal("Authenticate returned neither a decision nor an error")
			}
			checkDecision(t, d)
			checkExpected(t, c, d)
			if d.Allow != c.Allow {
				t.Errorf("Allow = %v (message %q), want %v", d.Allow, d.Message, c.Allow)
			}
			if c.Allow && c.UserID != "" && d.UserID != c.UserID {
				t.Errorf("UserID = %q, want %q", d.UserID, c.UserID)
			}
			for _, f := range c.Redact {
				if c.Allow && !slices.Contains(d.RedactAuth, f) {
					t.Errorf("RedactAuth = %q, want it to name %q", d.RedactAuth, f)
				}
			}
		})
	}
}

// checkExpected reports each of Message, Rooms and Data that the case
// states and the decision does not match, as one got/want diff.
func checkExpected(t *testing.T, c AuthCase, d *sdk.AuthDecision) {
	t.Helper()
	var diff []string
	if c.Message != "" && d.Message != c.Message {
		diff = append(diff, fmt.Sprintf("Message:\n    got  %q\n    want %q", d.Message, c.Message))
	}
	if c.Rooms != nil {
		got, want := slices.Sorted(slices.Values(d.Rooms)), slices.Sorted(slices.Values(c.Rooms))
		if !slices.Equal(got, want) {
			diff = append(diff, fmt.Sprintf("Rooms (in any order):\n    got  %q\n    want %q", d.Rooms, c.Rooms))
		}
	}
	if c.Data != nil {
		if d := jsonDiff(d.Data, c.Data); d != "" {
			diff = append(diff, "Data:\n"+d)
		}
	}
	if len(diff) > 0 {
		t.Errorf("decision differs from the case:\n  %s", strings.Join(diff, "\n  "))
	}
}

// jsonDiff compares two JSON objects (nil counts as {}) by top-level key
// and returns one line per difference, or "" when they are equal.
func jsonDiff(got, want json.RawMessage) string {
	var g, w map[string]any
	if len(got) == 0 {
		got = json.RawMessage("{}")
	}
	if json.Unmarshal(got, &g) != nil || json.Unmarshal(want, &w) != nil {
		if string(got) == string(want) {
			return ""
		}
		return fmt.Sprintf("    got  %s\n    want %s", got, want)
	}
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(w)) {
		gv, ok := g[k]
		switch {
		case !ok:
			lines = append(lines, fmt.Sprintf("    %q: missing, want %s", k, mustJSON(w[k])))
		case !reflect.DeepEqual(gv, w[k]):
			lines = append(lines, fmt.Sprintf("    %q: got %s, want %s", k, mustJSON(gv), mustJSON(w[k])))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(g)) {
		if _, ok := w[k]; !ok {
			lines = append(lines, fmt.Sprintf("    %q: got %s, not wanted", k, mustJSON(g[k])))
		}
	}
	return strings.Join(lines, "\n")
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func checkDecision(t *testing.T, d *sdk.AuthDecision) {
	t.Helper()
	if d.Data != nil && !isJSONObject(d.Data) {
		t.Errorf("decision Data %q is not a JSON object", d.Data)
	}
	if d.ErrorData != nil && !json.Valid(d.ErrorData) {
		t.Errorf("decision ErrorData %q is not JSON", d.ErrorData)
	}
	if slices.Contains(d.Rooms, "") {
		t.Errorf("decision Rooms %q contains an empty name", d.Rooms)
	}
	if slices.Contains(d.RedactAuth, "") {
		t.Errorf("decision RedactAuth %q contains an empty name", d.RedactAuth)
	}
}

func isJSONObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

func checkAuthBasics(t *testing.T, a sdk.Authenticator, opts Options) {
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	d, err := a.Authenticate(ctx, &sdk.AuthRequest{
		Namespace:  "/",
		Auth:       json.RawMessage(`{}`),
		Headers:    map[string]string{"user-agent": "plugintest"},
		Query:      map[string]string{"EIO": "4", "transport": "websocket"},
		RemoteAddr: "127.0.0.1", // an IP without a port, as the core sends it
	})
	if err != nil {
		t.Logf("an empty handshake got an error (the plugin could not decide): %v", err)
		return
	}
	if d == nil {
		t.Fatal("Authenticate returned neither a decision nor an error")
	}
	checkDecision(t, d)
}

func checkAdapterBasics(t *testing.T, a sdk.Adapter, opts Options) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan []sdk.AdapterMessage, 16)
	subDone := make(chan error, 1)
	go func() {
		subDone <- a.Subscribe(ctx, func(b []sdk.AdapterMessage) error {
			select {
			case got <- b:
			default: // the check only looks at the first batches
			}
			return nil
		})
	}()
	batch := []sdk.AdapterMessage{
		{Namespace: "/", Data: []byte(`["chat","hello"]`)},
		{Namespace: "/chat", Rooms: []string{"r1", "r2"}, Except: []string{"r3"}, Data: []byte(`["img",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{0, 1, 2}}, Volatile: true},
	}
	publish := func() {
		pctx, pcancel := context.WithTimeout(context.Background(), opts.Timeout)
		defer pcancel()
		if err := a.Publish(pctx, batch); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	publish()
	if opts.Echo {
		// The subscription may not be in place yet: publish again until a
		// batch comes back.
		deadline := time.After(opts.Timeout)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
	wait:
		for {
			select {
			case b := <-got:
				if !reflect.DeepEqual(b, batch) {
					t.Errorf("got back %+v, published %+v", b, batch)
				}
				break wait
			case err := <-subDone:
				t.Fatalf("Subscribe returned before it was cancelled: %v", err)
			case <-tick.C:
				publish()
			case <-deadline:
				t.Fatalf("published batch did not come back within %s", opts.Timeout)
			}
		}
	}
	select {
	case err := <-subDone:
		t.Fatalf("Subscribe returned before it was cancelled: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-subDone:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Subscribe after cancel returned %v, want nil or context.Canceled", err)
		}
	case <-time.After(opts.Timeout):
		t.Fatalf("Subscribe did not return within %s of its context ending", opts.Timeout)
	}
}

func checkShardingBasics(t *testing.T, s sdk.Sharder, opts Options) {
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	a1, err := s.Assign(ctx, "user-1")
	if err != nil {
		t.Fatalf("Assign: %v", err)
	}
	if a1 == nil || a1.Shard < 0 {
		t.Fatalf("Assign(user-1) = %+v, want a shard >= 0", a1)
	}
	a2, err := s.Assign(ctx, "user-1")
	if err != nil {
		t.Fatalf("Assign again: %v", err)
	}
	if a2 == nil || a2.Shard != a1.Shard {
		t.Errorf("Assign(user-1) answered shard %d then %+v: it must be stable", a1.Shard, a2)
	}
}

// SampleSnapshot is a small snapshot with a counter, a gauge and a
// histogram, labelled; CheckContract renders it.
func SampleSnapshot() *sdk.MetricsSnapshot {
	return &sdk.MetricsSnapshot{
		Counters: []sdk.MetricSample{{Name: "socketfleet_messages_total", Help: "Messages delivered.", Labels: []sdk.MetricLabel{{Name: "namespace", Value: "/"}}, Value: 42}},
		Gauges:   []sdk.MetricSample{{Name: "socketfleet_sockets", Help: "Connected sockets.", Value: 3}},
		Histograms: []sdk.MetricHistogram{{
			Name: "socketfleet_handshake_seconds", Help: "Handshake latency.",
			Labels: []sdk.MetricLabel{{Name: "transport", Value: "websocket"}},
			Bounds: []float64{0.01, 0.1, 1}, Counts: []uint64{1, 4, 5}, Count: 5, Sum: 0.73,
		}},
	}
}

func checkMetricsBasics(t *testing.T, m sdk.MetricsExporter, opts Options) {
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	ct, body, err := m.Render(ctx, SampleSnapshot())
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if ct == "" {
		t.Error("Render returned no content type")
	}
	if len(body) == 0 {
		t.Error("Render returned an empty body for a non-empty snapshot")
	}
	if _, _, err := m.Render(ctx, &sdk.MetricsSnapshot{}); err != nil {
		t.Errorf("Render(empty snapshot): %v", err)
	}
}

func checkLogSinkBasics(t *testing.T, s sdk.LogSink, opts Options) {
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	now := time.Now()
	if err := s.Write(ctx, []sdk.LogEntry{
		{Time: now, Level: "info", Message: "plugintest: first", Fields: json.RawMessage(`{"n":1}`)},
		{Time: now, Level: "warning", Message: "plugintest: second"},
	}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}
