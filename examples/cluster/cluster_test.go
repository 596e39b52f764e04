package cluster_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

const token = "cluster-example-token-0123"

// The script starts Redis and three instances; a client on the first gets
// an API emit made on the second; a fetch on the third finds it; SIGINT
// stops every process the script started.
func TestRunScript(t *testing.T) {
	testkit.Need(t, "redis-server", "redis-cli")
	bin, plugins := testkit.ServerAndPlugins(t, "adapter-redis")

	base := testkit.FreePorts(t, 3)
	redisPort := testkit.FreePorts(t, 1)
	cmd := testkit.Command("./run.sh", []string{"BIN=" + bin, "PLUGIN_DIR=" + plugins, "API_TOKEN=" + token,
		"BASE_PORT=" + strconv.Itoa(base), "REDIS_PORT=" + strconv.Itoa(redisPort)})
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.WaitDelay = 5 * time.Second
	script := testkit.Start(t, cmd) // stderr in script.Out; its own process group
	pgid := script.PID()

	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "cluster up") {
				close(up)
			}
		}
	}()
	select {
	case <-up:
	case <-time.After(30 * time.Second):
		t.Fatalf("the script did not say \"cluster up\"; stderr:\n%s", script.Out)
	}

	url := func(i int) string { return "127.0.0.1:" + strconv.Itoa(base+i) }
	c := dial(t, url(0))
	defer c.Close()

	// Emit through the API of the second instance.
	status, body := api(t, "POST", url(1), "emit", `{"event":"news","args":["hi"],"rooms":["lobby"]}`)
	if status != http.StatusAccepted {
		t.Fatalf("emit: %d %s", status, body)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("the client on instance 0 did not get the emit: %v", err)
		}
		if string(b) == "2" {
			continue
		}
		if string(b) != `42["news","hi"]` {
			t.Fatalf("client got %q", b)
		}
		break
	}

	// Fetch through the API of the third.
	status, body = api(t, "GET", url(2), "sockets?room=lobby", "")
	var fetched struct {
		Sockets []struct {
			ID string `json:"id"`
		} `json:"sockets"`
		Servers struct{ Expected, Answered int } `json:"servers"`
	}
	if err := json.Unmarshal([]byte(body), &fetched); status != http.StatusOK || err != nil {
		t.Fatalf("sockets: %d %s (%v)", status, body, err)
	}
	if len(fetched.Sockets) != 1 || fetched.Servers.Expected != 3 || fetched.Servers.Answered != 3 {
		t.Fatalf("sockets: %s", body)
	}

	// Ctrl-C: the script stops everything it started.
	pids := groupMembers(t, pgid)
	if len(pids) < 5 { // bash, redis, 3 servers (+ plugins)
		t.Fatalf("process group %d has %d members: %v", pgid, len(pids), pids)
	}
	_ = script.Signal(syscall.SIGINT)
	if !script.Wait(20 * time.Second) {
		t.Fatal("the script did not exit after SIGINT")
	}
	testkit.WaitForState(t, 10*time.Second, "no process left in the script's group after SIGINT", func() (bool, string) {
		left := groupMembers(t, pgid)
		return len(left) == 0, fmt.Sprint(left)
	})
}

// dial connects a WebSocket Socket.IO client and joins "lobby".
func dial(t *testing.T, addr string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	step := func(send, wantPrefix string) {
		if send != "" {
			if err := c.WriteMessage(websocket.TextMessage, []byte(send)); err != nil {
				t.Fatal(err)
			}
		}
		_, b, err := c.ReadMessage()
		if err != nil || !strings.HasPrefix(string(b), wantPrefix) {
			t.Fatalf("after %q: got %q (%v), want %s...", send, b, err, wantPrefix)
		}
	}
	step("", "0{")
	step("40", "40{")
	step(`421["join","lobby"]`, `431[{"ok":true}]`)
	return c
}

func api(t *testing.T, method, addr, route, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+"/api/v1/"+route, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// groupMembers lists the live (non-zombie) processes of a process group.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) > 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}
