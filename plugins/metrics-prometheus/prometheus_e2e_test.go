package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

// TestRealPrometheusScrapesTwoInstances builds the core and this plugin,
// starts two core instances, connects K Socket.IO clients split over them,
// and lets a real Prometheus scrape both: sum(socket_connections_active)
// must be K. The second instance serves /metrics on its own listener
// (`listen` in the metrics block) and not on its main port.
func TestRealPrometheusScrapesTwoInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers and Prometheus")
	}
	promBin := testkit.Need(t, "prometheus")[0]
	tmp := t.TempDir()
	server, pluginDir := testkit.ServerAndPlugins(t, "metrics-prometheus")

	cfgPath := filepath.Join(tmp, "config.hcl")
	cfg := fmt.Sprintf(`server {
  listen      = env("LISTEN_ADDR")
  instance_id = env("INSTANCE_ID")
  plugin_dir  = %q
}
metrics "prometheus" {
  environment = "test"
  listen      = env("METRICS_LISTEN", "")
}
namespace "/" {}
`, pluginDir)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	addrs := []string{testkit.FreeAddr(t), testkit.FreeAddr(t)}
	metricsAddrs := []string{addrs[0], testkit.FreeAddr(t)}
	for i, addr := range addrs {
		env := []string{"LISTEN_ADDR=" + addr, "INSTANCE_ID=socket-" + strconv.Itoa(i+1)}
		if metricsAddrs[i] != addr {
			env = append(env, "METRICS_LISTEN="+metricsAddrs[i])
		}
		testkit.Start(t, testkit.Command(server, env, "run", "--config", cfgPath)).Name = fmt.Sprintf("socket-server %d", i+1)
	}
	for _, addr := range metricsAddrs {
		testkit.WaitForState(t, 30*time.Second, "GET http://"+addr+"/metrics answers 200", func() (bool, string) {
			code, body := get("http://" + addr + "/metrics")
			return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
		})
	}

	const K = 5 // 3 on the first instance, 2 on the second
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range K {
		conn := testkit.ConnectSocketIO(t, addrs[i%2])
		wg.Add(1)
		go func() { defer wg.Done(); keepAlive(ctx, conn) }()
	}
	if code, _ := get("http://" + addrs[1] + "/metrics"); code != http.StatusNotFound {
		t.Errorf("instance 2 with its own metrics listener: GET /metrics on the main port = %d, want 404", code)
	}
	for i, addr := range metricsAddrs {
		want := fmt.Sprintf(`socket_connections_active{environment="test",instance="socket-%d"} %d`, i+1, (K+1-i)/2)
		testkit.WaitForState(t, 10*time.Second, addr+"/metrics shows "+want, func() (bool, string) {
			_, body := get("http://" + addr + "/metrics")
			return strings.Contains(body, want), body
		})
	}

	promAddr := testkit.FreeAddr(t)
	promCfg := filepath.Join(tmp, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: socket-server
    metrics_path: /metrics
    static_configs:
      - targets: ['%s', '%s']
`, metricsAddrs[0], metricsAddrs[1])), 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.Start(t, exec.Command(promBin, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(tmp, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn"))

	began := time.Now()
	testkit.WaitForState(t, 30*time.Second, "Prometheus: up == 1 for both targets", func() (bool, string) {
		res, raw := query(promAddr, "up")
		ups := 0
		for _, r := range res {
			if r.value == "1" {
				ups++
			}
		}
		return ups == 2, raw
	})
	t.Logf("both targets up after %v", time.Since(began).Round(100*time.Millisecond))
	var got string
	testkit.WaitForState(t, 10*time.Second, fmt.Sprintf("Prometheus: sum(socket_connections_active) == %d", K), func() (bool, string) {
		res, raw := query(promAddr, "sum(socket_connections_active)")
		if len(res) == 1 {
			got = res[0].value
		}
		return got == strconv.Itoa(K), raw
	})
	t.Logf("Prometheus: sum(socket_connections_active) = %s (K = %d)", got, K)
	res, raw := query(promAddr, `sum by (exported_instance, environment) (socket_connections_active)`)
	per := map[string]string{}
	for _, r := range res {
		if r.labels["environment"] == "test" {
			per[r.labels["exported_instance"]] = r.value
		}
	}
	// Prometheus keeps its own instance label (the target address) and
	// renames the core's to exported_instance (honor_labels: false).
	if per["socket-1"] != "3" || per["socket-2"] != "2" || len(per) != 2 {
		t.Errorf("per instance: %v, want socket-1 3, socket-2 2; %s", per, raw)
	}
	t.Logf("Prometheus: sum by (exported_instance, environment) (socket_connections_active) = %s", raw)
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

func get(u string) (int, string) {
	resp, err := httpClient.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type result struct {
	labels map[string]string
	value  string
}

// query runs an instant query on Prometheus' HTTP API.
func query(addr, q string) ([]result, string) {
	code, body := get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if code != http.StatusOK {
		return nil, fmt.Sprintf("%d %s", code, body)
	}
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" {
		return nil, body
	}
	var out []result
	for _, s := range r.Data.Result {
		v, _ := s.Value[1].(string)
		out = append(out, result{s.Metric, v})
	}
	return out, body
}

// keepAlive answers pings until ctx ends or the connection closes.
func keepAlive(ctx context.Context, conn *websocket.Conn) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if string(msg) == "2" {
			if err := conn.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return
			}
		}
	}
}
