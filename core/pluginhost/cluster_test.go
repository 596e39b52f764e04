package pluginhost_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/core/pluginhost"
	"github.com/socketfleet/socketfleet/sdk"
)

// A request goes into the plugin process, comes back out of it as an
// incoming request, is answered by the handler, and the answer returns to
// the requester; after kill -9 the serve stream re-opens by itself.
func TestLinkRequestsLoopThroughThePlugin(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAdapter, Name: "loop"})
	link := p.ClusterLink(pluginhost.LinkOptions{})
	defer link.Close()

	var mu sync.Mutex
	var served []sdk.ClusterRequest
	link.ServeRequests([]string{"/"}, func(in sdk.IncomingRequest) {
		mu.Lock()
		served = append(served, in.ClusterRequest)
		mu.Unlock()
		if in.Respond != nil {
			go in.Respond(sdk.ClusterResponse{Rooms: []string{"from-handler:" + in.Namespace}})
		}
	})

	ask := func() (sdk.RequestResult, []sdk.ClusterResponse, error) {
		var got []sdk.ClusterResponse
		res, err := link.Request(ctx5(t), sdk.ClusterRequest{Type: sdk.RequestAllRooms, Namespace: "/x", Timeout: time.Second},
			func(r sdk.ClusterResponse) { got = append(got, r) })
		return res, got, err
	}
	// The serve stream opens asynchronously: the first request may find no
	// handler yet and time out.
	var res sdk.RequestResult
	var got []sdk.ClusterResponse
	eventually(t, 5*time.Second, "an answered request", func() bool {
		var err error
		res, got, err = ask()
		if err != nil {
			t.Fatal(err)
		}
		return res.Answered == 1
	})
	if res.Expected != 1 || len(got) != 1 || len(got[0].Rooms) != 1 || got[0].Rooms[0] != "from-handler:/x" {
		t.Fatalf("result %+v, answers %+v", res, got)
	}

	// Unanswered types come back with an empty result at once.
	res, err := link.Request(ctx5(t), sdk.ClusterRequest{Type: sdk.RequestSocketsJoin, Namespace: "/", Targets: []string{"t"}}, func(sdk.ClusterResponse) {})
	if err != nil || res != (sdk.RequestResult{}) {
		t.Fatalf("join: %+v, %v", res, err)
	}
	eventually(t, 2*time.Second, "join served", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return served[len(served)-1].Type == sdk.RequestSocketsJoin
	})

	syscall.Kill(p.State().PID, syscall.SIGKILL)
	eventually(t, 2*time.Second, "plugin down", func() bool { return !p.State().Up })
	if _, err := link.Request(ctx5(t), sdk.ClusterRequest{Type: sdk.RequestAllRooms}, func(sdk.ClusterResponse) {}); !errors.Is(err, pluginhost.ErrUnavailable) {
		t.Fatalf("request while down: %v", err)
	}
	eventually(t, 10*time.Second, "an answered request after the restart", func() bool {
		res, _, err := ask()
		return err == nil && res.Answered == 1
	})
}

// Room changes reach the plugin in order; a restarted plugin gets every
// room again from the snapshot; Status drives Degraded and the plugin's
// metrics.
func TestLinkRoomsAndStatus(t *testing.T) {
	h, _ := newHost(t, pluginhost.Options{HealthInterval: 100 * time.Millisecond})
	p := launch(t, h, pluginhost.Spec{Kind: sdk.KindAdapter, Name: "loop"})
	link := p.ClusterLink(pluginhost.LinkOptions{})
	defer link.Close()

	var mu sync.Mutex
	held := map[string]bool{}
	change := func(room string, created bool) {
		mu.Lock()
		if created {
			held[room] = true
		} else {
			delete(held, room)
		}
		mu.Unlock()
		link.RoomChanged(sdk.RoomChange{Namespace: "/", Room: room, Created: created})
	}
	link.SetRoomSnapshot(func() []sdk.RoomChange {
		mu.Lock()
		defer mu.Unlock()
		var out []sdk.RoomChange
		for r := range held {
			out = append(out, sdk.RoomChange{Namespace: "/", Room: r, Created: true})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
		return out
	})
	roomsInPlugin := func() float64 {
		m := p.PluginMetrics(context.Background())
		if m == nil || len(m.Gauges) != 1 {
			return -1
		}
		return m.Gauges[0].Value
	}

	for _, r := range []string{"a", "b", "c", "d"} {
		change(r, true)
	}
	change("b", false)
	eventually(t, 3*time.Second, "3 rooms in the plugin", func() bool { return roomsInPlugin() == 3 })
	if d := p.Degraded(); d != "" {
		t.Fatalf("Degraded = %q", d)
	}

	change("degraded", true)
	eventually(t, 3*time.Second, "degraded", func() bool { return strings.Contains(p.Degraded(), "holding room degraded") })
	change("degraded", false)
	eventually(t, 3*time.Second, "no longer degraded", func() bool { return p.Degraded() == "" })

	syscall.Kill(p.State().PID, syscall.SIGKILL)
	eventually(t, 2*time.Second, "plugin down", func() bool { return !p.State().Up })
	eventually(t, 10*time.Second, "rooms resent to the new process", func() bool { return roomsInPlugin() == 3 })
	change("e", true)
	eventually(t, 3*time.Second, "4 rooms", func() bool { return roomsInPlugin() == 4 })
}
