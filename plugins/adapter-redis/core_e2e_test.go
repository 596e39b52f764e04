package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

// TestThroughTheCore builds the core and this plugin, starts two core
// instances on one Redis, puts WebSocket clients of both in room "r" and
// checks that a chat message sent on one instance reaches every member on
// both, exactly once, and no one else.
func TestThroughTheCore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts two servers")
	}
	r := testkit.StartRedis(t)
	tmp := t.TempDir()
	server, pluginDir := testkit.ServerAndPlugins(t, "adapter-redis")
	cfgPath := filepath.Join(tmp, "config.hcl")
	cfg := fmt.Sprintf(`server {
  listen     = env("LISTEN_ADDR")
  plugin_dir = %q
}
adapter "redis" {
  url = %q
}
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
  event "chat" {
    broadcast { to = args[0].room }
  }
}
`, pluginDir, r.URL())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addrs := []string{testkit.FreeAddr(t), testkit.FreeAddr(t)}
	for i, addr := range addrs {
		p := testkit.Start(t, testkit.Command(server, []string{"LISTEN_ADDR=" + addr}, "run", "--config", cfgPath))
		p.Name = fmt.Sprintf("socket-server %d", i+1)
	}

	// Both instances' plugins hold a pattern subscription before anyone talks.
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	testkit.WaitForState(t, 30*time.Second, "two pattern subscribers on Redis", func() (bool, string) {
		list, err := rdb.ClientList(context.Background()).Result()
		return strings.Count(list, " psub=1 ") >= 2, fmt.Sprint(list, err)
	})

	var members, others []*client
	for i := range 4 {
		c := dialClient(t, addrs[i%2])
		c.emitWithAck(t, `["join","r"]`)
		members = append(members, c)
	}
	for i := range 2 {
		others = append(others, dialClient(t, addrs[i%2]))
	}
	const chat = `42["chat",{"room":"r","text":"hi"}]`
	if err := members[0].conn.WriteMessage(websocket.TextMessage, []byte(chat)); err != nil {
		t.Fatal(err)
	}
	for i, c := range members {
		c.expect(t, fmt.Sprintf("member %d (instance %d)", i, i%2+1), chat)
	}
	time.Sleep(500 * time.Millisecond) // duplicates would arrive by now
	for i, c := range append(members, others...) {
		if extra := c.unread(); len(extra) > 0 {
			t.Errorf("client %d got extra packets: %q", i, extra)
		}
	}

	// Redis goes away: local delivery goes on, and /ready says the cluster
	// adapter is degraded once publishing fails; it recovers with Redis.
	ready := func() (int, string) {
		res, err := http.Get("http://" + addrs[0] + "/ready")
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	r.Kill()
	testkit.WaitForState(t, 15*time.Second, "/ready reporting the adapter degraded", func() (bool, string) {
		_ = members[0].conn.WriteMessage(websocket.TextMessage, []byte(chat))
		code, body := ready()
		return code == 503 && strings.Contains(body, "cluster adapter degraded"), fmt.Sprint(code, body)
	})
	members[2].expect(t, "local member while Redis is down", chat)
	r.Start()
	testkit.WaitForState(t, 30*time.Second, "/ready back to 200 with Redis", func() (bool, string) {
		_ = members[0].conn.WriteMessage(websocket.TextMessage, []byte(chat))
		code, body := ready()
		return code == 200, fmt.Sprint(code, body)
	})
}

type client struct {
	conn *websocket.Conn
	mu   sync.Mutex
	got  []string
	cond *sync.Cond
}

// dialClient connects to "/" and reads packets in the background,
// answering pings.
func dialClient(t *testing.T, addr string) *client {
	t.Helper()
	conn := testkit.ConnectSocketIO(t, addr)
	c := &client{conn: conn}
	c.cond = sync.NewCond(&c.mu)
	var wmu sync.Mutex
	go func() {
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				c.mu.Lock()
				c.got = append(c.got, "error: "+err.Error())
				c.cond.Broadcast()
				c.mu.Unlock()
				return
			}
			if string(msg) == "2" {
				wmu.Lock()
				_ = conn.WriteMessage(websocket.TextMessage, []byte("3"))
				wmu.Unlock()
				continue
			}
			c.mu.Lock()
			c.got = append(c.got, string(msg))
			c.cond.Broadcast()
			c.mu.Unlock()
		}
	}()
	return c
}

// next waits for the next packet.
func (c *client) next(t *testing.T, what string) string {
	t.Helper()
	timer := time.AfterFunc(10*time.Second, func() {
		c.mu.Lock()
		c.got = append(c.got, "timeout")
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.got) == 0 {
		c.cond.Wait()
	}
	p := c.got[0]
	c.got = c.got[1:]
	if p == "timeout" || strings.HasPrefix(p, "error: ") {
		t.Fatalf("%s: %s", what, p)
	}
	return p
}

func (c *client) emitWithAck(t *testing.T, args string) {
	t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte("420"+args)); err != nil {
		t.Fatal(err)
	}
	if p := c.next(t, "ack of "+args); !strings.HasPrefix(p, "430") {
		t.Fatalf("ack of %s: got %q", args, p)
	}
}

func (c *client) expect(t *testing.T, who, want string) {
	t.Helper()
	if p := c.next(t, who); p != want {
		t.Fatalf("%s: got %q, want %q", who, p, want)
	}
}

func (c *client) unread() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}
