package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// Helpers of the sharded-mode tests: a Redis Cluster of three masters, an
// instance of the plugin in sharded mode driven directly (Configure,
// Subscribe, ServeRequests, RoomsChanged, Request), and a fake core behind
// it that answers requests.

// testCluster is a Redis Cluster of three masters (no replicas) on free
// loopback ports, stopped when the test ends.
type testCluster struct {
	ports []int
}

func (c *testCluster) addr(i int) string { return "127.0.0.1:" + strconv.Itoa(c.ports[i]) }

// freeClusterPort finds a port p such that p and its cluster bus port
// p+10000 are free.
func freeClusterPort(t testing.TB, taken map[int]bool) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p+10000 > 65535 || taken[p] || taken[p+10000] {
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		if err != nil {
			continue
		}
		bus.Close()
		taken[p], taken[p+10000] = true, true
		return p
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

func startRedisCluster(t testing.TB) *testCluster {
	t.Helper()
	testkit.Need(t, "redis-server", "redis-cli")
	dir := t.TempDir()
	c := &testCluster{}
	taken := map[int]bool{}
	for range 3 {
		port := freeClusterPort(t, taken)
		c.ports = append(c.ports, port)
		p := testkit.Start(t, exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
			"--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no", "--dir", dir))
		p.Name = fmt.Sprintf("redis-server :%d", port)
		addr := c.addr(len(c.ports) - 1)
		testkit.WaitFor(t, 10*time.Second, "cluster node "+addr+" answering PING", func() bool { return testkit.Ping(addr) })
	}
	create := exec.Command("redis-cli", "--cluster", "create", c.addr(0), c.addr(1), c.addr(2), "--cluster-yes")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// Every node must see the whole cluster before clients rely on it.
	deadline := time.Now().Add(20 * time.Second)
	for i := range c.ports {
		rdb := redis.NewClient(&redis.Options{Addr: c.addr(i)})
		for {
			info, _ := rdb.ClusterInfo(context.Background()).Result()
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
				break
			}
			if time.Now().After(deadline) {
				rdb.Close()
				t.Fatalf("node %s: cluster not ok within 20s:\n%s", c.addr(i), info)
			}
			time.Sleep(100 * time.Millisecond)
		}
		rdb.Close()
	}
	return c
}

// ownerOf is the address of the master that serves a key's slot.
func (c *testCluster) ownerOf(t testing.TB, key string) string {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: c.addr(0)})
	defer rdb.Close()
	slots, err := rdb.ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	slot := clusterSlot(key)
	for _, s := range slots {
		if slot >= s.Start && slot <= s.End {
			return s.Nodes[0].Addr
		}
	}
	t.Fatalf("no node serves slot %d", slot)
	return ""
}

// shInstance is one plugin in sharded mode with its fake core.
type shInstance struct {
	p    *plugin
	m    *sharded
	core *fakeCore

	mu   sync.Mutex
	msgs []sdk.AdapterMessage
}

// allConfirmed reports whether Redis confirmed every channel the instance
// subscribes to.
func (in *shInstance) allConfirmed() bool {
	in.m.subMu.Lock()
	chs := make([]string, 0, len(in.m.chans))
	for ch := range in.m.chans {
		chs = append(chs, ch)
	}
	in.m.subMu.Unlock()
	for _, ch := range chs {
		if !in.m.confirmed(ch) {
			return false
		}
	}
	return len(chs) > 0
}

// startSharded configures a plugin from the JSON block cfg, runs Subscribe
// and ServeRequests(namespaces) against a fake core holding sockets, and
// stops everything when the test ends.
func startSharded(t testing.TB, cfg string, namespaces []string, sockets ...fakeSocket) *shInstance {
	t.Helper()
	p := &plugin{}
	if err := p.Configure(context.Background(), sdk.Config(cfg)); err != nil {
		t.Fatalf("Configure(%s): %v", cfg, err)
	}
	m, err := p.mode()
	if err != nil {
		t.Fatal(err)
	}
	in := &shInstance{p: p, m: m.(*sharded), core: &fakeCore{sockets: sockets}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() {
		_ = p.Subscribe(ctx, func(b []sdk.AdapterMessage) error {
			in.mu.Lock()
			in.msgs = append(in.msgs, b...)
			in.mu.Unlock()
			return nil
		})
		done <- struct{}{}
	}()
	go func() {
		_ = p.ServeRequests(ctx, namespaces, in.core.handle)
		done <- struct{}{}
	}()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("Subscribe/ServeRequests did not return within 10s of their context's end")
			}
		}
		p.close()
	})
	return in
}

// rooms reports rooms created (or deleted) as the core would.
func (in *shInstance) rooms(t testing.TB, created bool, nsp string, rooms ...string) {
	t.Helper()
	var ch []sdk.RoomChange
	for _, r := range rooms {
		ch = append(ch, sdk.RoomChange{Namespace: nsp, Room: r, Created: created})
	}
	if err := in.p.RoomsChanged(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
}

func (in *shInstance) publish(t testing.TB, msgs ...sdk.AdapterMessage) {
	t.Helper()
	if err := in.p.Publish(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

// event returns the received broadcasts whose event name is ev.
func (in *shInstance) event(ev string) []sdk.AdapterMessage {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []sdk.AdapterMessage
	for _, m := range in.msgs {
		var data []json.RawMessage
		if json.Unmarshal(m.Data, &data) == nil && len(data) > 0 && string(data[0]) == strconv.Quote(ev) {
			out = append(out, m)
		}
	}
	return out
}

// waitEvent waits until n broadcasts of event ev have arrived.
func (in *shInstance) waitEvent(t testing.TB, ev string, n int) []sdk.AdapterMessage {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := in.event(ev)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d %q broadcasts arrived within 10s", len(got), n, ev)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// shWaitUntil polls cond for up to 10s.
func shWaitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shardNumSub is PUBSUB SHARDNUMSUB of channel summed over the given
// servers (every master of a cluster).
func shardNumSub(t testing.TB, ch string, addrs ...string) int {
	t.Helper()
	n := 0
	for _, a := range addrs {
		rdb := redis.NewClient(&redis.Options{Addr: a})
		m, err := rdb.PubSubShardNumSub(context.Background(), ch).Result()
		rdb.Close()
		if err != nil {
			t.Fatal(err)
		}
		n += int(m[ch])
	}
	return n
}

// shardChannels is PUBSUB SHARDCHANNELS of the given servers, sorted.
func shardChannels(t testing.TB, addrs ...string) []string {
	t.Helper()
	var out []string
	for _, a := range addrs {
		rdb := redis.NewClient(&redis.Options{Addr: a})
		chs, err := rdb.PubSubShardChannels(context.Background(), "*").Result()
		rdb.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, chs...)
	}
	sort.Strings(out)
	return out
}

// fakeSocket is a socket of the fake core.
type fakeSocket struct {
	id    string
	rooms []string
}

// fakeCore stands for the core behind ServeRequests: it answers fetch
// sockets with its sockets, server-side emits with "ack:<event>", and
// broadcasts with ack as if each selected socket acknowledged with its id;
// it records every request.
type fakeCore struct {
	sockets []fakeSocket
	mute    bool // answers nothing (a hung instance)

	mu  sync.Mutex
	got []sdk.IncomingRequest
}

func (c *fakeCore) selected(rooms, except []string) []fakeSocket {
	in := func(s fakeSocket, rs []string) bool {
		for _, r := range rs {
			if r == s.id || shContains(s.rooms, r) {
				return true
			}
		}
		return false
	}
	var out []fakeSocket
	for _, s := range c.sockets {
		if (len(rooms) == 0 || in(s, rooms)) && !in(s, except) {
			out = append(out, s)
		}
	}
	return out
}

func shContains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func (c *fakeCore) handle(in sdk.IncomingRequest) {
	c.mu.Lock()
	c.got = append(c.got, in)
	mute := c.mute
	c.mu.Unlock()
	if mute || in.Respond == nil {
		return
	}
	switch in.Type {
	case sdk.RequestFetchSockets:
		var r sdk.ClusterResponse
		for _, s := range c.selected(in.Rooms, in.Except) {
			r.Sockets = append(r.Sockets, sdk.RemoteSocket{ID: s.id, Rooms: append([]string{s.id}, s.rooms...),
				Data: []byte(`{"user":"` + s.id[:4] + `"}`), Handshake: []byte(`{"address":"127.0.0.1","query":{}}`)})
		}
		in.Respond(r)
	case sdk.RequestServerSideEmit:
		var data []json.RawMessage
		_ = json.Unmarshal(in.Data, &data)
		ev := ""
		if len(data) > 0 {
			_ = json.Unmarshal(data[0], &ev)
		}
		go in.Respond(sdk.ClusterResponse{Ack: []byte(strconv.Quote("ack:" + ev))})
	case sdk.RequestBroadcastAck:
		socks := c.selected(in.Rooms, in.Except)
		in.Respond(sdk.ClusterResponse{Count: true, ClientCount: len(socks)})
		go func() {
			for _, s := range socks {
				in.Respond(sdk.ClusterResponse{Ack: []byte(strconv.Quote(s.id))})
			}
		}()
	}
}

func (c *fakeCore) requests() []sdk.IncomingRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sdk.IncomingRequest(nil), c.got...)
}

// shSID makes a 20-character socket id from a short name.
func shSID(name string) string { return (name + strings.Repeat("_", 20))[:20] }
