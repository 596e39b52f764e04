package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

// sessionAdapter keeps what the host sends and restores one session.
type sessionAdapter struct {
	scriptedAdapter
	mu      sync.Mutex
	cfgs    []sdk.RecoveryConfig
	changes []sdk.SessionChange
	restore *sdk.RestoredSession
}

func (a *sessionAdapter) EnableRecovery(_ context.Context, cfg sdk.RecoveryConfig) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cfg.MaxDisconnection < time.Second {
		return sdk.AttrError("mode", "too short to keep anything")
	}
	a.cfgs = append(a.cfgs, cfg)
	return nil
}

func (a *sessionAdapter) SaveSessions(_ context.Context, changes []sdk.SessionChange) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.changes = append(a.changes, changes...)
	return nil
}

func (a *sessionAdapter) RestoreSession(_ context.Context, ns, pid, offset string) (*sdk.RestoredSession, error) {
	if pid != a.restore.PID || ns != a.restore.Namespace {
		return nil, sdk.ErrNoSession
	}
	switch offset {
	case "boom":
		return nil, errors.New("redis: connection refused")
	case "unsupported":
		return nil, fmt.Errorf("this mode cannot: %w", sdk.ErrUnsupported)
	}
	return a.restore, nil
}

// The recovery calls cross the gRPC boundary intact: the config with its
// resume offsets, a batch of changes in order, a restored session with its
// missed broadcasts and their offsets; "no session" stays ErrNoSession and
// a refusal keeps its attribute.
func TestSessionStoreRoundTrip(t *testing.T) {
	impl := &sessionAdapter{
		scriptedAdapter: scriptedAdapter{fakeBase: fakeBase{kind: sdk.KindAdapter}},
		restore: &sdk.RestoredSession{
			Session: sdk.Session{Namespace: "/chat", ID: "sid", PID: "pid", Rooms: []string{"sid", "r"},
				Data: []byte(`{"a":1}`), User: "ann", Offset: "5-0"},
			Missed: []sdk.AdapterMessage{{Namespace: "/chat", Rooms: []string{"r"}, Data: []byte(`["e",1]`), Offset: "6-0"},
				{Namespace: "/chat", Data: []byte(`["b",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{1}}, Offset: "7-1"}},
		},
	}
	c := connect(t, impl)
	st, ok := c.(sdk.SessionStore)
	if !ok {
		t.Fatalf("client %T does not implement sdk.SessionStore", c)
	}
	cfg := sdk.RecoveryConfig{MaxDisconnection: 2 * time.Minute, Resume: map[string]string{"/": "1-0", "/chat": "3-2"}}
	if err := st.EnableRecovery(ctxT(t), cfg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(impl.cfgs, []sdk.RecoveryConfig{cfg}) {
		t.Errorf("plugin got %+v, want %+v", impl.cfgs, cfg)
	}
	var pe *sdk.PluginError
	if err := st.EnableRecovery(ctxT(t), sdk.RecoveryConfig{MaxDisconnection: time.Millisecond}); !errors.As(err, &pe) || pe.Attribute != "mode" {
		t.Errorf("refusal = %v, want a PluginError naming mode", err)
	}
	changes := []sdk.SessionChange{
		{State: sdk.SessionLive, Session: sdk.Session{Namespace: "/", ID: "a", PID: "p1", Rooms: []string{"a"}, Data: []byte("{}")}},
		{State: sdk.SessionSaved, Session: impl.restore.Session},
		{State: sdk.SessionEnded, Session: sdk.Session{Namespace: "/", ID: "a", PID: "p1"}},
	}
	if err := st.SaveSessions(ctxT(t), changes); err != nil {
		t.Fatal(err)
	}
	for i := range impl.changes { // the wire has no nil/empty distinction
		if impl.changes[i].Session.Rooms == nil {
			impl.changes[i].Session.Rooms = changes[i].Session.Rooms
		}
		if impl.changes[i].Session.Data == nil {
			impl.changes[i].Session.Data = changes[i].Session.Data
		}
	}
	if !reflect.DeepEqual(impl.changes, changes) {
		t.Errorf("plugin got %+v\nwant %+v", impl.changes, changes)
	}
	rs, err := st.RestoreSession(ctxT(t), "/chat", "pid", "5-0")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rs.Session, impl.restore.Session) || len(rs.Missed) != 2 ||
		rs.Missed[0].Offset != "6-0" || rs.Missed[1].Offset != "7-1" || string(rs.Missed[1].Attachments[0]) != "\x01" {
		t.Errorf("restored %+v", rs)
	}
	if _, err := st.RestoreSession(ctxT(t), "/chat", "other", "5-0"); !errors.Is(err, sdk.ErrNoSession) {
		t.Errorf("unknown pid: %v, want ErrNoSession", err)
	}
	if _, err := st.RestoreSession(ctxT(t), "/chat", "pid", "boom"); err == nil || errors.Is(err, sdk.ErrNoSession) {
		t.Errorf("store failure: %v, want an error other than ErrNoSession", err)
	}

	// A plugin's error wrapping ErrUnsupported is ErrUnsupported on the host.
	if _, err := st.RestoreSession(ctxT(t), "/chat", "pid", "unsupported"); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("wrapped ErrUnsupported: %v", err)
	}

	// An adapter without SessionStore: the host is told so.
	plain := connect(t, &scriptedAdapter{fakeBase: fakeBase{kind: sdk.KindAdapter}}).(sdk.SessionStore)
	if err := plain.EnableRecovery(ctxT(t), cfg); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("no SessionStore: %v, want ErrUnsupported", err)
	}
}
