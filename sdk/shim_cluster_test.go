package sdk_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

// clusterAdapter is an adapter that answers requests from a script and
// replays incoming requests the test hands it.
type clusterAdapter struct {
	scriptedAdapter
	answers []sdk.ClusterResponse
	result  sdk.RequestResult

	mu       sync.Mutex
	requests []sdk.ClusterRequest
	served   []string // namespaces ServeRequests was given
	rooms    []sdk.RoomChange
	incoming chan sdk.IncomingRequest
}

func (a *clusterAdapter) Request(_ context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error) {
	a.mu.Lock()
	a.requests = append(a.requests, req)
	a.mu.Unlock()
	if req.Type == sdk.RequestAllRooms {
		return sdk.RequestResult{}, errors.New("all rooms: not today")
	}
	for _, r := range a.answers {
		answer(r)
	}
	return a.result, nil
}

func (a *clusterAdapter) ServeRequests(ctx context.Context, namespaces []string, handle func(sdk.IncomingRequest)) error {
	a.mu.Lock()
	a.served = namespaces
	a.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case in := <-a.incoming:
			handle(in)
		}
	}
}

func (a *clusterAdapter) RoomsChanged(_ context.Context, changes []sdk.RoomChange) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rooms = append(a.rooms, changes...)
	return nil
}

func (a *clusterAdapter) Status(context.Context) (sdk.Status, error) {
	return sdk.Status{Degraded: "redis: connection refused", Metrics: sdk.MetricsSnapshot{
		Counters: []sdk.MetricSample{{Name: "redis_errors_total", Labels: []sdk.MetricLabel{{Name: "command", Value: "publish"}}, Value: 3}},
	}}, nil
}

func TestClusterRequestRoundTrip(t *testing.T) {
	impl := &clusterAdapter{
		scriptedAdapter: scriptedAdapter{fakeBase: fakeBase{kind: sdk.KindAdapter}},
		answers: []sdk.ClusterResponse{
			{Sockets: []sdk.RemoteSocket{{ID: "s1", Rooms: []string{"s1", "r"}, Data: []byte(`{"u":1}`), Handshake: []byte(`{"address":"x"}`)}}},
			{Count: true, ClientCount: 2},
			{Ack: []byte(`{"_placeholder":true,"num":0}`), AckAttachments: [][]byte{{1, 2}}},
		},
		result:   sdk.RequestResult{Expected: 3, Answered: 2},
		incoming: make(chan sdk.IncomingRequest),
	}
	c := connect(t, impl)
	r, ok := c.(sdk.Requester)
	if !ok {
		t.Fatalf("client %T does not implement sdk.Requester", c)
	}
	req := sdk.ClusterRequest{
		Type: sdk.RequestBroadcastAck, Namespace: "/chat", Rooms: []string{"r"}, Except: []string{"x"},
		Targets: []string{"t"}, Close: true, Data: []byte(`["e",{"_placeholder":true,"num":0}]`),
		Attachments: [][]byte{{9}}, WantAck: true, Timeout: 1500 * time.Millisecond,
	}
	var got []sdk.ClusterResponse
	res, err := r.Request(ctxT(t), req, func(resp sdk.ClusterResponse) { got = append(got, resp) })
	if err != nil {
		t.Fatal(err)
	}
	if res != impl.result {
		t.Errorf("result = %+v, want %+v", res, impl.result)
	}
	if !reflect.DeepEqual(got, impl.answers) {
		t.Errorf("answers = %+v\nwant %+v", got, impl.answers)
	}
	if !reflect.DeepEqual(impl.requests[0], req) {
		t.Errorf("plugin got %+v\nwant %+v", impl.requests[0], req)
	}
	if _, err := r.Request(ctxT(t), sdk.ClusterRequest{Type: sdk.RequestAllRooms}, func(sdk.ClusterResponse) {}); err == nil || !strings.Contains(err.Error(), "all rooms: not today") {
		t.Errorf("plugin error = %v", err)
	}

	// Incoming: the plugin hands a request over; the host answers twice.
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	handled := make(chan sdk.IncomingRequest, 2)
	serveDone := make(chan error, 1)
	go func() {
		serveDone <- r.ServeRequests(ctx, []string{"/", "/chat"}, func(in sdk.IncomingRequest) { handled <- in })
	}()
	responded := make(chan sdk.ClusterResponse, 4)
	// A broadcast with acks is answered several times by one server.
	impl.incoming <- sdk.IncomingRequest{
		ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestBroadcastAck, Namespace: "/chat", Rooms: []string{"r"}},
		Respond:        func(resp sdk.ClusterResponse) { responded <- resp },
	}
	impl.incoming <- sdk.IncomingRequest{ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestSocketsJoin, Namespace: "/", Targets: []string{"t"}}}
	in := <-handled
	if in.Type != sdk.RequestBroadcastAck || in.Namespace != "/chat" || in.Respond == nil {
		t.Fatalf("host got %+v", in)
	}
	in.Respond(sdk.ClusterResponse{Rooms: []string{"a"}})
	in.Respond(sdk.ClusterResponse{Rooms: []string{"b"}})
	for _, want := range []string{"a", "b"} {
		select {
		case resp := <-responded:
			if len(resp.Rooms) != 1 || resp.Rooms[0] != want {
				t.Errorf("plugin got answer %+v, want room %s", resp, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("answer did not reach the plugin")
		}
	}
	if in := <-handled; in.Type != sdk.RequestSocketsJoin || in.Respond != nil {
		t.Errorf("unanswered request arrived as %+v (Respond set: %v)", in.ClusterRequest, in.Respond != nil)
	}
	// A fetch is answered once per server: a second answer is dropped.
	fetched := make(chan sdk.ClusterResponse, 4)
	impl.incoming <- sdk.IncomingRequest{
		ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: "/"},
		Respond:        func(resp sdk.ClusterResponse) { fetched <- resp },
	}
	in = <-handled
	in.Respond(sdk.ClusterResponse{Rooms: []string{"first"}})
	in.Respond(sdk.ClusterResponse{Rooms: []string{"second"}})
	select {
	case resp := <-fetched:
		if resp.Rooms[0] != "first" {
			t.Errorf("fetch answer %+v", resp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("fetch answer did not reach the plugin")
	}
	select {
	case resp := <-fetched:
		t.Errorf("a second answer to a fetch reached the plugin: %+v", resp)
	case <-time.After(300 * time.Millisecond):
	}

	impl.mu.Lock()
	served := impl.served
	impl.mu.Unlock()
	if !reflect.DeepEqual(served, []string{"/", "/chat"}) {
		t.Errorf("plugin served namespaces %v", served)
	}
	cancel()
	select {
	case <-serveDone:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeRequests did not return after cancel")
	}

	// Rooms and status.
	o := c.(sdk.RoomObserver)
	changes := []sdk.RoomChange{{Namespace: "/", Room: "a", Created: true}, {Namespace: "/", Room: "a"}}
	if err := o.RoomsChanged(ctxT(t), changes); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(impl.rooms, changes) {
		t.Errorf("plugin got room changes %+v", impl.rooms)
	}
	st, err := c.(sdk.StatusReporter).Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Degraded != "redis: connection refused" || len(st.Metrics.Counters) != 1 || st.Metrics.Counters[0].Value != 3 {
		t.Errorf("status = %+v", st)
	}
}

// An adapter with broadcasts only: the host's client says ErrUnsupported.
func TestClusterRequestUnsupported(t *testing.T) {
	c := connect(t, &scriptedAdapter{fakeBase: fakeBase{kind: sdk.KindAdapter}})
	_, err := c.(sdk.Requester).Request(ctxT(t), sdk.ClusterRequest{Type: sdk.RequestFetchSockets}, func(sdk.ClusterResponse) {})
	if !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("Request error = %v, want ErrUnsupported", err)
	}
	err = c.(sdk.Requester).ServeRequests(ctxT(t), []string{"/"}, func(sdk.IncomingRequest) {})
	if !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("ServeRequests error = %v, want ErrUnsupported", err)
	}
	if err := c.(sdk.RoomObserver).RoomsChanged(ctxT(t), nil); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("RoomsChanged error = %v, want ErrUnsupported", err)
	}
	if _, err := c.(sdk.StatusReporter).Status(ctxT(t)); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("Status error = %v, want ErrUnsupported", err)
	}
}
