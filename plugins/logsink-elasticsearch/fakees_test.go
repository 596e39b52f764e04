package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeES is a strict stand-in for an Elasticsearch 7 node: no Elasticsearch
// can run on the CI machines. It checks every bulk request the way ES 7
// parses it (path, method, Content-Type, alternating action and document
// lines, trailing newline), checks the index name against the document's
// @timestamp, and answers with ES 7's bodies, per-item errors included.
type fakeES struct {
	t   *testing.T
	srv *http.Server
	ln  net.Listener
	url string

	mu        sync.Mutex
	requests  int   // bulk requests answered 200
	refused   int   // bulk requests answered 429/503 as a whole
	sizes     []int // items per bulk request
	stored    []map[string]any
	seen      map[string]int // message → times it arrived in a request
	auth      []string       // Authorization headers seen
	nextID    int
	wholeFail func(n int) int // status for the whole n-th bulk request (0: answer normally)
	bulkCalls int
	// itemStatus decides an item's status from its document and how many
	// times that message arrived (1 the first time); 0 means 201.
	itemStatus func(doc map[string]any, attempt int) int
}

func newFakeES(t *testing.T) *fakeES {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startFakeES(t, ln)
}

// startFakeES serves on ln (tests that start with the node down listen on
// a known port later).
func startFakeES(t *testing.T, ln net.Listener) *fakeES {
	f := &fakeES{t: t, ln: ln, url: "http://" + ln.Addr().String(), seen: map[string]int{}}
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve)}
	go func() { _ = f.srv.Serve(ln) }()
	t.Cleanup(func() { _ = f.srv.Close() })
	return f
}

func (f *fakeES) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	f.mu.Lock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	switch {
	case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		_, _ = io.WriteString(w, `{
  "name" : "fake-node-1",
  "cluster_name" : "docker-cluster",
  "cluster_uuid" : "m5LDd9kFR1WkCV1l0WnXTw",
  "version" : {
    "number" : "7.17.25",
    "build_flavor" : "default",
    "build_type" : "docker",
    "build_hash" : "f9b6b57d1d0f76e2d14291c04fb50abeb642cfbf",
    "build_date" : "2024-10-16T22:06:36.904732810Z",
    "build_snapshot" : false,
    "lucene_version" : "8.11.3",
    "minimum_wire_compatibility_version" : "6.8.0",
    "minimum_index_compatibility_version" : "6.0.0-beta1"
  },
  "tagline" : "You Know, for Search"
}
`)
	case r.URL.Path == "/_bulk" || (strings.HasSuffix(r.URL.Path, "/_bulk") && strings.Count(r.URL.Path, "/") == 2):
		f.bulk(w, r)
	default:
		f.t.Errorf("fake ES: unexpected %s %s", r.Method, r.URL)
		esError(w, 400, "illegal_argument_exception", "no handler found for uri ["+r.URL.Path+"] and method ["+r.Method+"]")
	}
}

func esError(w http.ResponseWriter, status int, typ, reason string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	e := map[string]any{"type": typ, "reason": reason}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error":  map[string]any{"root_cause": []any{e}, "type": typ, "reason": reason},
		"status": status,
	})
}

func (f *fakeES) bulk(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		f.t.Errorf("fake ES: bulk with method %s", r.Method)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		f.t.Errorf("fake ES: bulk Content-Type %q, want application/x-ndjson", ct)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("fake ES: read body: %v", err)
		return
	}
	f.mu.Lock()
	f.bulkCalls++
	n := f.bulkCalls
	whole := 0
	if f.wholeFail != nil {
		whole = f.wholeFail(n)
	}
	f.mu.Unlock()
	switch whole {
	case 0:
	case 429:
		f.mu.Lock()
		f.refused++
		f.mu.Unlock()
		esError(w, 429, "es_rejected_execution_exception", "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1024, max_coordinating_and_primary_bytes=0]")
		return
	default:
		f.mu.Lock()
		f.refused++
		f.mu.Unlock()
		esError(w, whole, "master_not_discovered_exception", "no master node")
		return
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		f.t.Errorf("fake ES: bulk body does not end with a newline: %q", body)
		esError(w, 400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
		return
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(lines)%2 != 0 {
		f.t.Errorf("fake ES: %d lines: action and document lines must alternate", len(lines))
		return
	}
	var items []any
	errs := false
	took := 3
	for i := 0; i < len(lines); i += 2 {
		var action map[string]map[string]any
		dec := json.NewDecoder(strings.NewReader(lines[i]))
		dec.UseNumber()
		if err := dec.Decode(&action); err != nil || len(action) != 1 || action["index"] == nil {
			f.t.Errorf("fake ES: action line %q: want {\"index\":{...}} (%v)", lines[i], err)
			return
		}
		meta := action["index"]
		index, _ := meta["_index"].(string)
		if len(meta) != 1 || index == "" {
			f.t.Errorf("fake ES: action line %q: want only _index", lines[i])
		}
		if r.URL.Path != "/_bulk" && index == "" {
			index = strings.Split(r.URL.Path, "/")[1]
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(lines[i+1]), &doc); err != nil {
			f.t.Errorf("fake ES: document line %q: %v", lines[i+1], err)
			return
		}
		f.checkDoc(lines[i+1], doc, index)
		msg, _ := doc["message"].(string)
		f.mu.Lock()
		f.seen[msg]++
		attempt := f.seen[msg]
		status := 0
		if f.itemStatus != nil {
			status = f.itemStatus(doc, attempt)
		}
		f.nextID++
		id := fmt.Sprintf("fakeid%08d", f.nextID)
		item := map[string]any{"_index": index, "_type": "_doc", "_id": id}
		switch status {
		case 0, 201:
			f.stored = append(f.stored, doc)
			item["_version"] = 1
			item["result"] = "created"
			item["_shards"] = map[string]any{"total": 2, "successful": 1, "failed": 0}
			item["_seq_no"] = f.nextID - 1
			item["_primary_term"] = 1
			item["status"] = 201
		case 429:
			errs = true
			item["status"] = 429
			item["error"] = map[string]any{"type": "es_rejected_execution_exception", "reason": "rejected execution of processing of [1234][indices:data/write/bulk[s][p]]: request: BulkShardRequest [[" + index + "][0]] containing [1] requests, target allocation id: x, primary term: 1 on EsThreadPoolExecutor[name = fake-node-1/write, queue capacity = 10000]"}
		case 400:
			errs = true
			item["status"] = 400
			item["error"] = map[string]any{
				"type":      "mapper_parsing_exception",
				"reason":    "failed to parse field [status] of type [long] in document with id '" + id + "'. Preview of field's value: 'abc'",
				"caused_by": map[string]any{"type": "illegal_argument_exception", "reason": "For input string: \"abc\""},
			}
		default:
			f.t.Errorf("fake ES: itemStatus %d not modelled", status)
		}
		f.mu.Unlock()
		items = append(items, map[string]any{"index": item})
	}
	f.mu.Lock()
	f.requests++
	f.sizes = append(f.sizes, len(lines)/2)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"took": took, "errors": errs, "items": items})
}

// checkDoc: the document's first keys are @timestamp (RFC 3339, UTC),
// level and message, and the index is the pattern applied to that date.
func (f *fakeES) checkDoc(line string, doc map[string]any, index string) {
	if !strings.HasPrefix(line, `{"@timestamp":"`) || !strings.Contains(line, `","level":"`) {
		f.t.Errorf("fake ES: document %s: want @timestamp, level, message first", line)
	}
	ts, _ := doc["@timestamp"].(string)
	tm, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil || !strings.HasSuffix(ts, "Z") {
		f.t.Errorf("fake ES: @timestamp %q is not RFC 3339 UTC: %v", ts, err)
		return
	}
	if want := "socket-server-" + tm.Format("2006.01.02"); index != want {
		f.t.Errorf("fake ES: document of %s went to index %q, want %q", ts, index, want)
	}
	if _, ok := doc["level"].(string); !ok {
		f.t.Errorf("fake ES: document %s without a level", line)
	}
	if _, ok := doc["message"].(string); !ok {
		f.t.Errorf("fake ES: document %s without a message", line)
	}
}

// storedCount is how many times a document with msg was stored.
func (f *fakeES) storedCount(msg string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, d := range f.stored {
		if d["message"] == msg {
			n++
		}
	}
	return n
}

func (f *fakeES) snapshot() (requests, refused int, sizes []int, stored []map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, f.refused, append([]int(nil), f.sizes...), append([]map[string]any(nil), f.stored...)
}
