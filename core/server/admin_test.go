package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

const adminOff = `
admin {
  auth = false
}
`

func TestAdminUIServed(t *testing.T) {
	_, ts := newTestInstance(t, adminOff)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noRedirect.Get(ts.URL + "/admin")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/admin/" {
		t.Fatalf("/admin: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	res, err = http.Get(ts.URL + "/admin/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	page := string(body)
	if _, err := os.Stat("../admin/ui/www/dist/index.html"); err != nil {
		// Built without `make ui`: the page says how to get the files.
		if res.StatusCode != http.StatusNotFound || !strings.Contains(page, "make ui") {
			t.Fatalf("without the UI: %d %s", res.StatusCode, page)
		}
		return
	}
	if res.StatusCode != http.StatusOK || !strings.Contains(page, "Socket.IO Admin UI") {
		t.Fatalf("/admin/: %d %.200s", res.StatusCode, page)
	}
	// Pointed at this server, and nothing from outside sites.
	if !strings.Contains(page, `s.setItem("server_url",location.origin)`) || !strings.Contains(page, `s.setItem("path","/socket.io")`) {
		t.Fatalf("no prefill in %s", page)
	}
	if strings.Contains(page, "https://") || !strings.Contains(page, "mdi/css/materialdesignicons.min.css") {
		t.Fatalf("outside links or no local icons: %s", page)
	}
	res, err = http.Get(ts.URL + "/admin/mdi/css/materialdesignicons.min.css")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("icons: %d", res.StatusCode)
	}
}

func TestAdminUIOff(t *testing.T) {
	_, ts := newTestInstance(t, "admin {\n  auth = false\n  ui = false\n}\n")
	res, err := http.Get(ts.URL + "/admin/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("ui = false: /admin/ answers %d", res.StatusCode)
	}
}

// The admin namespace's logins and actions reach /metrics (through the
// snapshot the metrics plugin renders).
func TestAdminMetrics(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("ADMIN_PASSWORD_HASH", string(hash))
	s, ts := newTestInstance(t, "admin {\n  username = \"root\"\n  password_hash = env(\"ADMIN_PASSWORD_HASH\")\n  read_only = true\n}\n")
	addr := strings.TrimPrefix(ts.URL, "http://")
	dial := func(auth string) string {
		c, _, err := websocket.DefaultDialer.Dial(testkit.SocketIOURL(addr), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		testkit.ReadWS(t, c) // open
		if err := c.WriteMessage(websocket.TextMessage, []byte("40/admin,"+auth)); err != nil {
			t.Fatal(err)
		}
		reply := testkit.ReadWS(t, c)
		if strings.HasPrefix(reply, "40/admin,") {
			_ = c.WriteMessage(websocket.TextMessage, []byte(`42/admin,["_disconnect","/",true]`))
		}
		return reply
	}
	if r := dial(`{"username":"root","password":"nope"}`); !strings.HasPrefix(r, `44/admin,{"message":"invalid credentials"}`) {
		t.Fatalf("wrong password: %s", r)
	}
	if r := dial(`{"username":"root","password":"pw"}`); !strings.HasPrefix(r, "40/admin,") {
		t.Fatalf("right password: %s", r)
	}
	want := map[string]float64{
		`admin_logins_total{result="ok"}`:                            1,
		`admin_logins_total{result="invalid_credentials"}`:           1,
		`admin_actions_total{action="_disconnect",result="refused"}`: 1,
	}
	var got map[string]float64
	testkit.WaitForState(t, 3*time.Second, "admin counters", func() (bool, string) {
		got = map[string]float64{}
		for _, m := range s.snapshot().Counters {
			if strings.HasPrefix(m.Name, "admin_") {
				got[m.Name+labelString(m.Labels)] = m.Value
			}
		}
		for k, v := range want {
			if got[k] != v {
				return false, fmt.Sprint(got)
			}
		}
		return true, ""
	})
}

func labelString(ls []sdk.MetricLabel) string {
	var parts []string
	for _, l := range ls {
		if l.Name != "instance" {
			parts = append(parts, l.Name+"="+strconv.Quote(l.Value))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// BenchmarkAdminStats is the cost of one server_stats (sent every 2 s) with
// ADMIN_BENCH_SOCKETS connected sockets (default 2000): multiply ns/op by
// 0.5/s for the share of a core it takes.
func BenchmarkAdminStats(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("ADMIN_BENCH_SOCKETS")); err == nil && v > 0 {
		n = v
	}
	s, ts := newTestInstance(b, adminOff)
	addr := strings.TrimPrefix(ts.URL, "http://")
	for i := 0; i < n; i++ {
		c, err := testkit.DialSocketIO(websocket.DefaultDialer, testkit.SocketIOURL(addr), 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
	}
	a := s.admin
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.SendStats()
	}
}

// server_stats as the UI reads it: the counts and the aggregated events
// since the last report.
func TestAdminServerStats(t *testing.T) {
	s, ts := newTestInstance(t, adminOff)
	addr := strings.TrimPrefix(ts.URL, "http://")
	ui, _, err := websocket.DefaultDialer.Dial(testkit.SocketIOURL(addr), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ui.Close()
	testkit.ReadWS(t, ui)
	if err := ui.WriteMessage(websocket.TextMessage, []byte("40/admin,")); err != nil {
		t.Fatal(err)
	}
	testkit.ReadWS(t, ui) // CONNECT
	if cfg := testkit.ReadWS(t, ui); cfg != `42/admin,["config",{"supportedFeatures":["EMIT","JOIN","LEAVE","DISCONNECT","MJOIN","MLEAVE","MDISCONNECT","AGGREGATED_EVENTS"]}]` {
		t.Fatalf("config: %s", cfg)
	}
	testkit.ConnectSocketIO(t, addr)
	gone := testkit.ConnectSocketIO(t, addr)
	gone.Close()
	testkit.WaitFor(t, 3*time.Second, "a socket gone", func() bool { return s.SocketIO.Stats.Sockets.Load() == 2 })
	s.admin.SendStats()
	msg := testkit.ReadWS(t, ui)
	var pkt []json.RawMessage
	if err := json.Unmarshal([]byte(strings.TrimPrefix(msg, "42/admin,")), &pkt); err != nil || len(pkt) != 2 || string(pkt[0]) != `"server_stats"` {
		t.Fatalf("server_stats: %s (%v)", msg, err)
	}
	var st struct {
		ServerID     string `json:"serverId"`
		PID          int    `json:"pid"`
		ClientsCount int    `json:"clientsCount"`
		Namespaces   []struct {
			Name         string `json:"name"`
			SocketsCount int    `json:"socketsCount"`
		} `json:"namespaces"`
		AggregatedEvents []struct {
			Type    string `json:"type"`
			SubType string `json:"subType"`
			Count   int    `json:"count"`
		} `json:"aggregatedEvents"`
	}
	if err := json.Unmarshal(pkt[1], &st); err != nil {
		t.Fatal(err)
	}
	if st.ServerID != s.cfg.Server.InstanceID || st.PID != os.Getpid() || st.ClientsCount != 2 {
		t.Fatalf("stats: %s", pkt[1])
	}
	if fmt.Sprint(st.Namespaces) != "[{/ 1} {/admin 1}]" {
		t.Fatalf("namespaces: %v", st.Namespaces)
	}
	events := map[string]int{}
	for _, e := range st.AggregatedEvents {
		events[e.Type+"/"+e.SubType] += e.Count
	}
	if events["rawConnection/"] != 3 || events["rawDisconnection/transport close"] != 1 || events["packetsIn/"] < 3 || events["bytesOut/"] == 0 {
		t.Fatalf("aggregated events: %v", events)
	}
	// The next report counts only what happened since.
	s.admin.SendStats()
	msg = testkit.ReadWS(t, ui)
	if strings.Contains(msg, "rawConnection") {
		t.Fatalf("counted twice: %s", msg)
	}
}
