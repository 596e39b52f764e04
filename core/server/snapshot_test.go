package server

import (
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

func sample(snap *sdk.MetricsSnapshot, name string, kv ...string) (float64, bool) {
	for _, list := range [][]sdk.MetricSample{snap.Counters, snap.Gauges} {
	next:
		for _, s := range list {
			if s.Name != name {
				continue
			}
			for i := 0; i+1 < len(kv); i += 2 {
				found := false
				for _, l := range s.Labels {
					if l.Name == kv[i] && l.Value == kv[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			return s.Value, true
		}
	}
	return 0, false
}

func TestSnapshotCountsWhatHappened(t *testing.T) {
	srv, ts := newTestInstance(t, testConfig)
	a, b := dialWS(t, ts), dialWS(t, ts)
	a.send(`40`)
	a.read()
	a.read()
	b.send(`40/nope,`)
	b.read()
	a.send(`421["join","lobby"]`)
	a.read()
	a.send(`42["chat:message",{"room":"lobby","text":"hi"}]`)
	a.read()
	// No room: the broadcast's `to` fails on this event's data, twice.
	a.send(`42["chat:message",{"text":"no room"}]`)
	a.send(`42["chat:message",{"text":"no room"}]`)
	a.send(`421["join","lobby"]`) // read in order: the two failures are done once this is answered
	a.read()
	b.c.Close()
	deadline := time.Now().Add(2 * time.Second)
	for srv.SocketIO.Stats.Connections.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	snap := srv.snapshot()
	for _, c := range []struct {
		name string
		kv   []string
		want float64
	}{
		{"socket_connections_active", []string{"instance", srv.cfg.Server.InstanceID}, 1},
		{"socket_connections_opened_total", nil, 2},
		{"socket_connections_closed_total", []string{"reason", "transport close"}, 1},
		{"socket_handshake_failures_total", []string{"reason", "invalid_namespace"}, 1},
		{"socket_messages_received_total", []string{"namespace", "/"}, 5},
		{"socket_broadcasts_total", nil, 1},
		{"socket_rule_errors_total", []string{"namespace", "/", "event", "chat:message", "rule", "test.hcl:19"}, 2},
	} {
		got, ok := sample(snap, c.name, c.kv...)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.kv, got, ok, c.want)
		}
	}
	if got, _ := sample(snap, "socket_received_bytes_total", "namespace", "/"); got <= 0 {
		t.Errorf("received bytes %v", got)
	}
}
