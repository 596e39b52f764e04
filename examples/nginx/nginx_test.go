package nginx_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

const instanceConfig = `
server {
  listen      = env("LISTEN_ADDR")
  instance_id = env("INSTANCE_ID")
  plugin_dir  = env("PLUGIN_DIR")
  drain { timeout = "2s" }
}
adapter "redis" {
  url = env("REDIS_URL")
}
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
  event "chat" {
    broadcast { to = args[0].room }
  }
}
`

// client is a WebSocket Socket.IO client bound to a source address, so that
// nginx's ip_hash (first three octets) sees distinct clients.
type client struct {
	src  string
	c    *websocket.Conn
	inst string
	msgs chan string
}

func dialFrom(src, url string) (*client, error) {
	d := websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext,
		HandshakeTimeout: 3 * time.Second}
	c, res, err := d.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	cl := &client{src: src, c: c, msgs: make(chan string, 64)}
	for _, ck := range res.Cookies() {
		if ck.Name == "sf_instance" {
			cl.inst = ck.Value
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, _, err := c.ReadMessage(); err != nil { // open
		c.Close()
		return nil, err
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("40"))
	if _, b, err := c.ReadMessage(); err != nil || !strings.HasPrefix(string(b), "40") {
		c.Close()
		return nil, fmt.Errorf("connect: %q %v", b, err)
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte(`421["join","lobby"]`))
	if _, b, err := c.ReadMessage(); err != nil || string(b) != `431[{"ok":true}]` {
		c.Close()
		return nil, fmt.Errorf("join: %q %v", b, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	go func() {
		defer close(cl.msgs)
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			if string(b) == "2" {
				_ = c.WriteMessage(websocket.TextMessage, []byte("3"))
				continue
			}
			cl.msgs <- string(b)
		}
	}()
	return cl, nil
}

// expect waits for msg on every client, exactly once each.
func expect(t *testing.T, clients []*client, msg string) {
	t.Helper()
	for _, c := range clients {
		select {
		case got := <-c.msgs:
			if got != msg {
				t.Fatalf("client %s on %s got %q, want %q", c.src, c.inst, got, msg)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("client %s on %s did not get %q", c.src, c.inst, msg)
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, c := range clients {
		select {
		case got := <-c.msgs:
			t.Fatalf("client %s got %q twice or unexpectedly", c.src, got)
		default:
		}
	}
}

func TestThreeInstancesBehindNginx(t *testing.T) {
	nginx := testkit.Need(t, "nginx", "redis-server")[0]
	tmp := t.TempDir()
	bin, plugins := testkit.ServerAndPlugins(t, "adapter-redis")
	cfg := filepath.Join(tmp, "instance.hcl")
	_ = os.WriteFile(cfg, []byte(strings.Replace(instanceConfig, "drain {", "instance_cookie {}\n  drain {", 1)), 0o644)

	redis := testkit.StartRedis(t)

	type instance struct {
		id, addr string
		proc     *testkit.Process
	}
	var insts []*instance
	for i := 1; i <= 3; i++ {
		in := &instance{id: fmt.Sprintf("sf-%d", i), addr: testkit.FreeAddr(t)}
		in.proc = testkit.Start(t, testkit.Command(bin, []string{"LISTEN_ADDR=" + in.addr, "INSTANCE_ID=" + in.id,
			"PLUGIN_DIR=" + plugins, "REDIS_URL=" + redis.URL()}, "run", "--config", cfg))
		in.proc.Name = in.id
		insts = append(insts, in)
	}
	for _, in := range insts {
		testkit.WaitHTTP(t, 15*time.Second, "http://"+in.addr+"/health")
	}

	// nginx with examples/nginx/ip-hash.conf, pointed at our ports.
	src, err := os.ReadFile("ip-hash.conf")
	if err != nil {
		t.Fatal(err)
	}
	nginxPort := testkit.FreePort(t)
	conf := strings.Replace(string(src), "listen 127.0.0.1:8080;", fmt.Sprintf("listen 127.0.0.1:%d;", nginxPort), 1)
	for i, in := range insts {
		conf = strings.Replace(conf, fmt.Sprintf("server 127.0.0.1:808%d;", i+1), "server "+in.addr+";", 1)
	}
	conf = regexp.MustCompile(`worker_processes 1;`).ReplaceAllString(conf,
		"worker_processes 1;\npid "+filepath.Join(tmp, "nginx.pid")+";\nerror_log "+filepath.Join(tmp, "nginx-error.log")+";")
	conf = strings.Replace(conf, "http {", "http {\n  access_log off;\n  client_body_temp_path "+tmp+";\n  proxy_temp_path "+tmp+";", 1)
	nconf := filepath.Join(tmp, "nginx.conf")
	_ = os.WriteFile(nconf, []byte(conf), 0o644)
	testkit.Start(t, testkit.Command(nginx, nil, "-c", nconf, "-p", tmp, "-g", "daemon off;"))
	base := fmt.Sprintf("127.0.0.1:%d", nginxPort)
	testkit.WaitHTTP(t, 15*time.Second, "http://"+base+"/health")

	// WebSocket clients from 8 source networks, spread over the instances.
	wsURL := "ws://" + base + "/socket.io/?EIO=4&transport=websocket"
	var clients []*client
	perInst := map[string]int{}
	for n := 1; n <= 8; n++ {
		c, err := dialFrom(fmt.Sprintf("127.0.%d.1", n), wsURL)
		if err != nil {
			t.Fatalf("client %d: %v", n, err)
		}
		defer c.c.Close()
		clients = append(clients, c)
		perInst[c.inst]++
	}
	if len(perInst) < 2 {
		t.Fatalf("ip_hash put every client on one instance: %v", perInst)
	}
	t.Logf("WebSocket clients per instance through nginx: %v", perInst)

	// Polling stays on its instance through nginx: handshake, CONNECT and
	// polls from one source address reach the session's owner.
	for n := 20; n < 23; n++ {
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.%d.1", n))}}).DialContext}
		hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		get := func(u string) string {
			res, err := hc.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return string(b)
		}
		open := get("http://" + base + "/socket.io/?EIO=4&transport=polling")
		sid := regexp.MustCompile(`"sid":"([^"]+)"`).FindStringSubmatch(open)
		if sid == nil {
			t.Fatalf("polling handshake: %q", open)
		}
		u := "http://" + base + "/socket.io/?EIO=4&transport=polling&sid=" + sid[1]
		post := func(body string) string {
			res, err := hc.Post(u, "text/plain", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return string(b)
		}
		if got := post("40"); got != "ok" {
			t.Fatalf("polling CONNECT through nginx: %q", got)
		}
		if got := get(u); !strings.HasPrefix(got, "40") {
			t.Fatalf("polling CONNECT reply through nginx: %q", got)
		}
		for i := 0; i < 3; i++ {
			if got := post(`421["join","lobby"]`); got != "ok" {
				t.Fatalf("polling request %d through nginx left its instance: %q", i, got)
			}
			if got := get(u); got != `431[{"ok":true}]` {
				t.Fatalf("polling ack %d through nginx: %q", i, got)
			}
		}
		// Leave the room again: these sessions are not read any more.
		post(`41`)
		tr.CloseIdleConnections()
	}

	// A broadcast reaches every member on every instance exactly once.
	_ = clients[0].c.WriteMessage(websocket.TextMessage, []byte(`42["chat",{"room":"lobby","n":1}]`))
	expect(t, clients, `42["chat",{"room":"lobby","n":1}]`)

	// SIGTERM the instance with the most clients.
	var victim *instance
	for _, in := range insts {
		if victim == nil || perInst[in.id] > perInst[victim.id] {
			victim = in
		}
	}
	var moved, stayed []*client
	for _, c := range clients {
		if c.inst == victim.id {
			moved = append(moved, c)
		} else {
			stayed = append(stayed, c)
		}
	}
	_ = victim.proc.Signal(syscall.SIGTERM)
	signalled := time.Now()
	// The signal is handled asynchronously: /ready turns 503 once it is.
	for ready := 0; ; time.Sleep(10 * time.Millisecond) {
		res, err := http.Get("http://" + victim.addr + "/ready")
		if err != nil {
			t.Fatalf("/ready of the draining instance: %v", err)
		}
		res.Body.Close()
		if res.StatusCode == 503 {
			break
		}
		if ready++; time.Since(signalled) > time.Second {
			t.Fatalf("/ready of the draining instance still %d after 1s (%d answers)", res.StatusCode, ready)
		}
	}
	for _, c := range moved {
		select {
		case got := <-c.msgs:
			if !strings.HasPrefix(got, `42["server:maintenance",{"message":`) || !strings.Contains(got, `"code":"SERVER_DRAINING"`) {
				t.Fatalf("draining client got %q", got)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("no server:maintenance")
		}
	}
	for _, c := range moved {
		for range c.msgs { // until the drain closes it
		}
	}
	if d := time.Since(signalled); d > 4*time.Second {
		t.Fatalf("drained clients closed after %v (window 2s)", d)
	}

	// They reconnect through nginx to the other instances.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var back []*client
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, old := range moved {
		wg.Add(1)
		go func(src string) {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := dialFrom(src, wsURL)
				if err == nil {
					mu.Lock()
					back = append(back, c)
					mu.Unlock()
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}(old.src)
	}
	wg.Wait()
	if len(back) != len(moved) {
		t.Fatalf("%d of %d drained clients reconnected", len(back), len(moved))
	}
	for _, c := range back {
		defer c.c.Close()
		if c.inst == victim.id {
			t.Fatalf("client %s reconnected to the drained instance", c.src)
		}
	}
	victim.proc.WaitExit(t, 30*time.Second)
	if err := victim.proc.Err(); err != nil {
		t.Fatalf("drained instance exit: %v", err)
	}
	t.Logf("%s drained: %d clients moved to the other instances", victim.id, len(moved))
	// And keep receiving broadcasts.
	all := append(stayed, back...)
	_ = all[len(all)-1].c.WriteMessage(websocket.TextMessage, []byte(`42["chat",{"room":"lobby","n":2}]`))
	expect(t, all, `42["chat",{"room":"lobby","n":2}]`)
}
