package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

// TestStreamsPluginKillLosesNothing: two instances in streams mode with
// connection state recovery; instance B's adapter plugin is kill -9ed
// while A publishes 200 numbered messages a second. B's member gets every
// message once, in order, with increasing offsets: the restarted plugin
// reads on from the newest offset B had delivered (sdk.RecoveryConfig's
// Resume), not from the stream's end, and B drops what it had delivered.
func TestStreamsPluginKillLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts two servers")
	}
	const (
		rate   = 200
		total  = 1200
		killAt = 300
		token  = "streams-core-test-token-0123456789"
	)
	r := testkit.StartRedis(t)
	server, pluginDir := testkit.ServerAndPlugins(t, "adapter-redis")
	cfgPath := filepath.Join(t.TempDir(), "config.hcl")
	cfg := fmt.Sprintf(`server {
  listen        = env("LISTEN_ADDR")
  instance_id   = env("INSTANCE_ID")
  plugin_dir    = %q
  ping_interval = "60s"
  ping_timeout  = "60s"
  limits {
    packet_rate = 1000
  }
  recovery {}
  api {
    token = %q
  }
}
adapter "redis" {
  url  = %q
  mode = "streams"
}
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
  event "chat" {
    broadcast { to = args[0].room }
  }
}
`, pluginDir, token, r.URL())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startInstance(t, server, cfgPath, "a")
	b := startInstance(t, server, cfgPath, "b")
	for _, in := range []*coreInstance{a, b} {
		testkit.WaitForState(t, 30*time.Second, in.name+" ready", func() (bool, string) {
			code, body := getURL(in.addr, "/ready")
			return code == http.StatusOK, body
		})
	}
	pub := dialClient(t, a.addr)
	member := dialClient(t, b.addr)
	pub.emitWithAck(t, `["join","r"]`)
	member.emitWithAck(t, `["join","r"]`)
	member.emitWithAck(t, `["join","only-on-b"]`)
	// The backend API's room list is the cluster's in streams mode too
	// (the adapter has no all-rooms request: the core asks for the
	// sockets instead).
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.addr+"/api/v1/rooms", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rooms struct {
		Rooms   []string `json:"rooms"`
		Servers struct {
			LocalOnly bool `json:"local_only"`
		} `json:"servers"`
	}
	err = json.NewDecoder(res.Body).Decode(&rooms)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || err != nil || fmt.Sprint(rooms.Rooms) != "[only-on-b r]" || rooms.Servers.LocalOnly {
		t.Fatalf("A's /api/v1/rooms: %+v %v, want [only-on-b r] from both instances", rooms, err)
	}
	if err := pub.conn.WriteMessage(websocket.TextMessage, []byte(`42["chat",{"room":"r","n":-1}]`)); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^42\["chat",\{"room":"r","n":(-?\d+)\},"(\d+)-(\d+)"\]$`)
	read := func() (n int, ms, seq uint64) {
		t.Helper()
		p := member.next(t, "a numbered message on B")
		m := re.FindStringSubmatch(p)
		if m == nil {
			t.Fatalf("B's member got %q, want a chat message with its offset", p)
		}
		n, _ = strconv.Atoi(m[1])
		ms, _ = strconv.ParseUint(m[2], 10, 64)
		seq, _ = strconv.ParseUint(m[3], 10, 64)
		return n, ms, seq
	}
	if n, _, _ := read(); n != -1 {
		t.Fatalf("warm-up: got %d", n)
	}

	oldPID := adapterPID(t, b.addr, token)
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		for n := 0; n < total; n++ {
			if d := time.Until(start.Add(time.Duration(n) * time.Second / rate)); d > 0 {
				time.Sleep(d)
			}
			if n == killAt {
				if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
					done <- err
					return
				}
			}
			if err := pub.conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`42["chat",{"room":"r","n":%d}]`, n))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var lastMS, lastSeq uint64
	for want := 0; want < total; want++ {
		n, ms, seq := read()
		if n != want {
			t.Fatalf("B's member got message %d, want %d (lost or duplicated across the plugin's restart)", n, want)
		}
		if ms < lastMS || (ms == lastMS && seq <= lastSeq) {
			t.Fatalf("message %d: offset %d-%d not after %d-%d", n, ms, seq, lastMS, lastSeq)
		}
		lastMS, lastSeq = ms, seq
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pid := adapterPID(t, b.addr, token); pid == oldPID || pid == 0 {
		t.Fatalf("B's adapter plugin was not restarted (pid %d, was %d)", pid, oldPID)
	}
	time.Sleep(200 * time.Millisecond)
	if extra := member.unread(); len(extra) > 0 {
		t.Fatalf("B's member got more: %q", extra)
	}
}

// adapterPID reads the adapter plugin's pid from an instance's /health
// (shown with the API token).
func adapterPID(t *testing.T, addr, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/health", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var h struct {
		Plugins []struct {
			Kind string `json:"kind"`
			PID  int    `json:"pid"`
		} `json:"plugins"`
	}
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	for _, p := range h.Plugins {
		if p.Kind == "adapter" {
			return p.PID
		}
	}
	t.Fatal("no adapter plugin in /health")
	return 0
}
