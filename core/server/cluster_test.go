package server

import (
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/core/socketio/localcluster"
	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

const clusterConfig = `
server {
  ping_interval = "10s"
  ping_timeout  = "10s"
  api {
    token = "` + apiToken + `"
  }
}
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
  event "announce" {
    server_emit {}
  }
  event "shout" {
    server_emit {
      event = "audit"
      args  = [{ from = socket.id, text = args[0] }]
    }
  }
  server_event "announce" {
    broadcast {
      to    = args[0].room
      event = "announcement"
      args  = [args[0].text]
    }
    ack = { ok = true, text = args[0].text }
  }
  server_event "audit" {
    broadcast { to = "auditors" }
  }
  server_event "fragile" {
    broadcast {
      to   = args[0].room
      args = [args[0].text]
    }
    ack = args[0].missing
  }
}
`

// clusterInstance is a whole instance (config, rules, API) linked to the
// others of hub in this process.
func clusterInstance(t *testing.T, hub *localcluster.Hub) (*Server, *httptest.Server, *localcluster.Node) {
	t.Helper()
	srv, ts := newTestInstance(t, clusterConfig)
	node := hub.Join()
	srv.attachCluster(node)
	return srv, ts, node
}

func TestServerEmitRoundTripBetweenInstances(t *testing.T) {
	hub := &localcluster.Hub{Timeout: 500 * time.Millisecond}
	a, tsA, _ := clusterInstance(t, hub)
	b, tsB, _ := clusterInstance(t, hub)
	a1, _ := member(t, tsA, "r")
	b1, _ := member(t, tsB, "r")
	b2, b2ID := member(t, tsB)
	auditA, _ := member(t, tsA, "auditors")
	auditB, _ := member(t, tsB, "auditors")

	// An event rule's server_emit reaches the server_event block of every
	// instance, the sender's included; each delivers to its own sockets.
	a1.send(`42["announce",{"room":"r","text":"hello"}]`)
	for _, c := range []*wsClient{a1, b1} {
		if got := c.read(); got != `42["announcement","hello"]` {
			t.Fatalf("member got %q", got)
		}
	}
	// Evaluated arguments and another event name.
	b2.send(`42["shout","yo"]`)
	for _, c := range []*wsClient{auditA, auditB} {
		if got := c.read(); got != `42["audit",{"from":"`+b2ID+`","text":"yo"}]` {
			t.Fatalf("auditor got %q", got)
		}
	}

	// The API's server-emit with acks: one answer per instance.
	r := apiDo(t, tsB, "POST", "/api/v1/server-emit", apiToken, `{"event":"announce","args":[{"room":"r","text":"api"}],"ack":true}`)
	if r.status != 200 || r.raw != `{"responses":[{"ok":true,"text":"api"},{"ok":true,"text":"api"}],"servers":{"expected":2,"answered":2}}`+"\n" {
		t.Fatalf("server-emit: %d %s", r.status, r.raw)
	}
	for _, c := range []*wsClient{a1, b1} {
		if got := c.read(); got != `42["announcement","api"]` {
			t.Fatalf("member got %q", got)
		}
	}
	// Unknown server events are ignored and counted; nobody answers.
	r = apiDo(t, tsA, "POST", "/api/v1/server-emit", apiToken, `{"event":"nobody","ack":true}`)
	if r.status != 200 || r.raw != `{"responses":[],"servers":{"expected":2,"answered":0}}`+"\n" {
		t.Fatalf("unknown server event: %d %s", r.status, r.raw)
	}
	if a.SocketIO.Stats.ServerEventsUnknown.Load() != 1 || b.SocketIO.Stats.ServerEventsUnknown.Load() != 1 {
		t.Fatalf("unknown counted %d %d", a.SocketIO.Stats.ServerEventsUnknown.Load(), b.SocketIO.Stats.ServerEventsUnknown.Load())
	}
	if got := a.Routing.ServerEvents.Load() + b.Routing.ServerEvents.Load(); got != 6 {
		t.Fatalf("server events handled: %d, want 6 (3 emits x 2 instances)", got)
	}

	// Fetch sockets and rooms see both instances.
	r = apiDo(t, tsA, "GET", "/api/v1/sockets", apiToken, "")
	var fetched struct {
		Sockets []struct{ ID string }
		Servers map[string]any
	}
	if err := json.Unmarshal([]byte(r.raw), &fetched); err != nil || len(fetched.Sockets) != 5 ||
		fetched.Servers["expected"] != 2.0 || fetched.Servers["answered"] != 2.0 {
		t.Fatalf("sockets: %s", r.raw)
	}
	r = apiDo(t, tsA, "GET", "/api/v1/rooms", apiToken, "")
	if !strings.HasPrefix(r.raw, `{"rooms":["auditors","r"],"servers":{"expected":2,"answered":2}}`) {
		t.Fatalf("rooms: %s", r.raw)
	}

	// Join on another instance, then an emit through A reaches B's socket.
	apiDo(t, tsA, "POST", "/api/v1/join", apiToken, `{"rooms":["`+b2ID+`"],"join":["late"]}`)
	apiDo(t, tsA, "POST", "/api/v1/emit", apiToken, `{"rooms":["late"],"event":"welcome"}`)
	if got := b2.read(); got != `42["welcome"]` {
		t.Fatalf("b2 got %q", got)
	}

	// Broadcast with acks across instances: both acks come back.
	done := make(chan apiReply, 1)
	go func() {
		done <- apiDo(t, tsB, "POST", "/api/v1/emit", apiToken, `{"rooms":["r"],"event":"q","ack_timeout":"3s"}`)
	}()
	for _, c := range []*wsClient{a1, b1} {
		f := c.read()
		c.send("43" + strings.TrimSuffix(strings.TrimPrefix(f, "42"), `["q"]`) + `["ok"]`)
	}
	start := time.Now()
	r = <-done
	if r.raw != `{"responses":["ok","ok"],"servers":{"expected":2,"answered":2}}`+"\n" || time.Since(start) > 2*time.Second {
		t.Fatalf("emit with acks: %s after %v", r.raw, time.Since(start))
	}
	for _, c := range []*wsClient{a1, b1, b2, auditA, auditB} {
		c.silent(100 * time.Millisecond)
	}
}

func TestRoomChangesReachTheAdapter(t *testing.T) {
	hub := &localcluster.Hub{}
	srv, ts, node := clusterInstance(t, hub)
	c1, _ := member(t, ts, "red")
	member(t, ts, "red", "blue")
	want := []sdk.RoomChange{{Namespace: "/", Room: "red", Created: true}, {Namespace: "/", Room: "blue", Created: true}}
	if got := node.RoomChanges(); !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
	snap := node.RoomSnapshot()
	slices.SortFunc(snap, func(x, y sdk.RoomChange) int { return strings.Compare(x.Room, y.Room) })
	if !slices.Equal(snap, []sdk.RoomChange{want[1], want[0]}) {
		t.Fatalf("snapshot %v", snap)
	}
	apiDo(t, ts, "POST", "/api/v1/leave", apiToken, `{"leave":["blue"]}`)
	c1.send(`41`) // c1 leaves the namespace; red keeps its other member
	testkit.WaitFor(t, 5*time.Second, "c1 gone", func() bool { return srv.SocketIO.Namespace("/").SocketCount() == 1 })
	want = append(want, sdk.RoomChange{Namespace: "/", Room: "blue"})
	if got := node.RoomChanges(); !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
	apiDo(t, ts, "POST", "/api/v1/disconnect", apiToken, `{"close":true}`)
	testkit.WaitFor(t, 5*time.Second, "red deleted", func() bool { return len(node.RoomChanges()) == 4 })
	if got := node.RoomChanges()[3]; got != (sdk.RoomChange{Namespace: "/", Room: "red"}) {
		t.Fatalf("last change %v", got)
	}
}

// A burst of requests from other instances over the bound is refused and
// counted, never queued without limit.
func TestClusterRequestsAreBounded(t *testing.T) {
	srv, _ := newTestInstance(t, clusterConfig)
	for i := 0; i < maxConcurrentRequests; i++ {
		srv.requestSlots <- struct{}{} // every slot busy
	}
	var mu sync.Mutex
	answered := 0
	srv.serveClusterRequest(sdk.IncomingRequest{
		ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestAllRooms, Namespace: "/"},
		Respond:        func(sdk.ClusterResponse) { mu.Lock(); answered++; mu.Unlock() },
	})
	if srv.RequestsRefused.Load() != 1 {
		t.Fatalf("refused %d", srv.RequestsRefused.Load())
	}
	<-srv.requestSlots
	srv.serveClusterRequest(sdk.IncomingRequest{
		ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestAllRooms, Namespace: "/"},
		Respond:        func(sdk.ClusterResponse) { mu.Lock(); answered++; mu.Unlock() },
	})
	testkit.WaitFor(t, 5*time.Second, "answer", func() bool { mu.Lock(); defer mu.Unlock(); return answered == 1 })
}

// Requests that get no answer change state: they are executed at once and
// in order, even when every slot for the others is busy, never refused.
func TestClusterJoinLeaveRunInOrderAndAreNeverRefused(t *testing.T) {
	srv, ts := newTestInstance(t, clusterConfig)
	c, id := member(t, ts)
	for i := 0; i < maxConcurrentRequests; i++ {
		srv.requestSlots <- struct{}{} // every slot busy
	}
	sel := sdk.ClusterRequest{Namespace: "/", Rooms: []string{id}, Targets: []string{"late"}}
	join, leave := sel, sel
	join.Type, leave.Type = sdk.RequestSocketsJoin, sdk.RequestSocketsLeave
	ns := srv.SocketIO.Namespace("/")
	srv.serveClusterRequest(sdk.IncomingRequest{ClusterRequest: join})
	if got := ns.RoomIndex().Sockets([]string{"late"}); !slices.Equal(got, []string{id}) {
		t.Fatalf("after join, late holds %v", got)
	}
	srv.serveClusterRequest(sdk.IncomingRequest{ClusterRequest: leave})
	srv.serveClusterRequest(sdk.IncomingRequest{ClusterRequest: join})
	srv.serveClusterRequest(sdk.IncomingRequest{ClusterRequest: leave})
	if got := ns.RoomIndex().Sockets([]string{"late"}); len(got) != 0 || srv.RequestsRefused.Load() != 0 {
		t.Fatalf("after join, leave, join, leave: late holds %v, %d refused", got, srv.RequestsRefused.Load())
	}
	c.silent(50 * time.Millisecond)
}

func TestPluginMetricsMergeWithCoreLabels(t *testing.T) {
	inst := sdk.MetricLabel{Name: "instance", Value: "i1"}
	snap := &sdk.MetricsSnapshot{Counters: []sdk.MetricSample{{Name: "core_total", Labels: []sdk.MetricLabel{inst}, Value: 1}}}
	mergePluginMetrics(snap, &sdk.MetricsSnapshot{
		Counters: []sdk.MetricSample{
			{Name: "redis_errors_total", Value: 3},
			{Name: "redis_errors_total", Value: 4}, // duplicate series: skipped
			{Name: "core_total", Value: 9},         // the core's series: skipped
			{Name: "labelled_total", Labels: []sdk.MetricLabel{{Name: "instance", Value: "x"}}, Value: 5}, // keeps its own instance
		},
		Gauges:     []sdk.MetricSample{{Name: "redis_errors_total", Value: 1}}, // same name, other kind: skipped
		Histograms: []sdk.MetricHistogram{{Name: "redis_command_duration_seconds", Bounds: []float64{0.1}, Counts: []uint64{1}, Count: 1, Sum: 0.05}},
	}, inst)
	mergePluginMetrics(snap, nil, inst)
	if len(snap.Counters) != 3 || len(snap.Gauges) != 0 || len(snap.Histograms) != 1 {
		t.Fatalf("merged %+v", snap)
	}
	if c := snap.Counters[1]; c.Name != "redis_errors_total" || c.Value != 3 || !slices.Equal(c.Labels, []sdk.MetricLabel{inst}) {
		t.Fatalf("plugin counter %+v", c)
	}
	if c := snap.Counters[2]; len(c.Labels) != 1 || c.Labels[0].Value != "x" {
		t.Fatalf("own instance label %+v", c)
	}
	if h := snap.Histograms[0]; !slices.Equal(h.Labels, []sdk.MetricLabel{inst}) {
		t.Fatalf("histogram labels %+v", h.Labels)
	}
}

type degraded string

func (d degraded) Degraded() string { return string(d) }

func TestReadyReportsTheAdapterDegraded(t *testing.T) {
	srv, ts := newTestInstance(t, testConfig)
	ps := &plugins{adapter: degraded("redis: connection refused")}
	srv.plugins.Store(ps)
	code, body, _ := getJSON(t, ts.URL+"/ready")
	if code != 503 || body["reason"] != "cluster adapter degraded: redis: connection refused" {
		t.Fatalf("%d %v", code, body)
	}
	ps.adapter = degraded("")
	if code, body, _ := getJSON(t, ts.URL+"/ready"); code != 200 || body["ready"] != true {
		t.Fatalf("%d %v", code, body)
	}
}

func TestServerEventsOnASingleInstance(t *testing.T) {
	srv, ts := newTestInstance(t, clusterConfig)
	a, _ := member(t, ts, "r")
	// No adapter: a server_emit still runs this instance's server_event.
	a.send(`42["announce",{"room":"r","text":"solo"}]`)
	if got := a.read(); got != `42["announcement","solo"]` {
		t.Fatalf("got %q", got)
	}
	// Expressions that fail on the data: the broadcast is skipped, the ack
	// is null, both counted.
	r := apiDo(t, ts, "POST", "/api/v1/server-emit", apiToken, `{"event":"fragile","args":[{"text":1}],"ack":true}`)
	if r.raw != `{"responses":[null],"servers":{"expected":1,"answered":1,"local_only":true}}`+"\n" {
		t.Fatalf("fragile: %s", r.raw)
	}
	if n := srv.Routing.ServerErrors.Load(); n != 2 {
		t.Fatalf("server_event errors %d, want 2", n)
	}
	// When the data fits, both work.
	r = apiDo(t, ts, "POST", "/api/v1/server-emit", apiToken, `{"event":"fragile","args":[{"room":"r","text":"t","missing":{"b":2,"a":1}}],"ack":true}`)
	if !strings.HasPrefix(r.raw, `{"responses":[{"a":1,"b":2}]`) {
		t.Fatalf("raw ack: %s", r.raw)
	}
	if got := a.read(); got != `42["fragile","t"]` {
		t.Fatalf("got %q", got)
	}
	a.silent(100 * time.Millisecond)
}
