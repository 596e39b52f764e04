package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

const apiToken = "test-token-0123456789"

const apiConfig = `
server {
  ping_interval = "10s"
  ping_timeout  = "10s"
  api {
    token = "` + apiToken + `"
  }
}
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
}
namespace "/admin" {}
`

type apiReply struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func apiDo(t *testing.T, ts *httptest.Server, method, path, token, body string) apiReply {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := apiReply{status: res.StatusCode, header: res.Header, raw: string(b)}
	if err := json.Unmarshal(b, &out.body); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %q", method, path, b)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q", method, path, ct)
	}
	return out
}

// member connects a client to "/" and joins it to rooms; it returns the
// client and its socket id.
func member(t *testing.T, ts *httptest.Server, rooms ...string) (*wsClient, string) {
	t.Helper()
	c := dialWS(t, ts)
	id := connectAs(t, c, ``)
	for _, r := range rooms {
		c.send(`421["join","` + r + `"]`)
		if got := c.read(); got != `431[{"ok":true}]` {
			t.Fatalf("join %s: %q", r, got)
		}
	}
	return c, id
}

// silent checks that nothing (but pings) arrives for a while. It breaks
// the connection for further reads: call it last.
func (w *wsClient) silent(d time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(d)
	for {
		_ = w.c.SetReadDeadline(deadline)
		_, b, err := w.c.ReadMessage()
		if err != nil {
			return
		}
		if string(b) == "2" {
			w.send("3")
			continue
		}
		w.t.Fatalf("unexpected frame %q", b)
	}
}

var apiEndpoints = []struct{ method, path, body string }{
	{"POST", "/api/v1/emit", `{"event":"x"}`},
	{"GET", "/api/v1/sockets", ``},
	{"GET", "/api/v1/rooms", ``},
	{"POST", "/api/v1/join", `{"join":["r"]}`},
	{"POST", "/api/v1/leave", `{"leave":["r"]}`},
	{"POST", "/api/v1/disconnect", `{}`},
	{"POST", "/api/v1/server-emit", `{"event":"x"}`},
}

func TestAPIRefusesWithoutTheToken(t *testing.T) {
	_, ts := newTestInstance(t, apiConfig)
	for _, ep := range apiEndpoints {
		for _, token := range []string{"", "wrong-token-0123456789", apiToken + "x"} {
			r := apiDo(t, ts, ep.method, ep.path, token, ep.body)
			if r.status != 401 || r.body["error"] == "" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with token %q: %d %s", ep.method, ep.path, token, r.status, r.raw)
			}
		}
		// And the right token is accepted.
		if r := apiDo(t, ts, ep.method, ep.path, apiToken, ep.body); r.status >= 400 {
			t.Errorf("%s %s with the token: %d %s", ep.method, ep.path, r.status, r.raw)
		}
	}
	// Basic auth or a bare token is not a bearer token.
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/rooms", nil)
	req.Header.Set("Authorization", apiToken)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 401 {
		t.Errorf("bare token: %v %v", res.StatusCode, err)
	}
	if r := apiDo(t, ts, "GET", "/api/v1/nope", apiToken, ""); r.status != 404 {
		t.Errorf("unknown endpoint: %d %s", r.status, r.raw)
	}
	if r := apiDo(t, ts, "GET", "/api/v1/emit", apiToken, ""); r.status != 405 || r.header.Get("Allow") != "POST" {
		t.Errorf("wrong method: %d %s", r.status, r.raw)
	}
	// Off unless configured.
	_, plain := newTestInstance(t, testConfig)
	res, err := http.Get(plain.URL + "/api/v1/rooms")
	if err != nil || res.StatusCode != 404 {
		t.Errorf("API without api block: %v %v", res.StatusCode, err)
	}
}

func TestAPIMalformedRequests(t *testing.T) {
	_, ts := newTestInstance(t, apiConfig)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		reason                   string
	}{
		{"not JSON", "POST", "/api/v1/emit", `{"event":`, 400, "malformed JSON"},
		{"syntax error", "POST", "/api/v1/emit", `{"event" "x"}`, 400, "malformed JSON at byte"},
		{"empty body", "POST", "/api/v1/emit", ``, 400, "empty body"},
		{"array body", "POST", "/api/v1/emit", `["x"]`, 400, "must be a JSON object"},
		{"unknown field", "POST", "/api/v1/emit", `{"event":"x","room":"r"}`, 400, `unknown field "room"`},
		{"trailing data", "POST", "/api/v1/emit", `{"event":"x"} {}`, 400, "trailing data"},
		{"wrong type", "POST", "/api/v1/emit", `{"event":"x","rooms":"r"}`, 400, `field "rooms" must be a list of strings`},
		{"missing event", "POST", "/api/v1/emit", `{"args":[1]}`, 400, "event is required"},
		{"reserved event", "POST", "/api/v1/emit", `{"event":"disconnect"}`, 400, "reserved"},
		{"reserved server event", "POST", "/api/v1/server-emit", `{"event":"connect"}`, 400, "reserved"},
		{"empty room", "POST", "/api/v1/emit", `{"event":"x","rooms":["a",""]}`, 400, "rooms[1] is an empty room name"},
		{"bad ack_timeout", "POST", "/api/v1/emit", `{"event":"x","ack_timeout":"soon"}`, 400, "ack_timeout"},
		{"huge ack_timeout", "POST", "/api/v1/emit", `{"event":"x","ack_timeout":"2h"}`, 400, "at most 1m0s"},
		{"undeclared namespace", "POST", "/api/v1/emit", `{"namespace":"/nope","event":"x"}`, 404, `namespace "/nope" is not declared`},
		{"undeclared namespace in query", "GET", "/api/v1/sockets?namespace=/nope", ``, 404, "not declared"},
		{"unknown query parameter", "GET", "/api/v1/sockets?rooms=r", ``, 400, `unknown query parameter "rooms"`},
		{"room in rooms query", "GET", "/api/v1/rooms?room=r", ``, 400, `unknown query parameter "room"`},
		{"join without rooms", "POST", "/api/v1/join", `{"rooms":["a"]}`, 400, "join must name at least one room"},
		{"leave with join", "POST", "/api/v1/leave", `{"join":["a"],"leave":["b"]}`, 400, `unknown field "join"`},
		{"close not bool", "POST", "/api/v1/disconnect", `{"close":"yes"}`, 400, `field "close" must be a boolean`},
		{"ack not bool", "POST", "/api/v1/server-emit", `{"event":"x","ack":1}`, 400, `field "ack" must be a boolean`},
		{"too large", "POST", "/api/v1/emit", `{"event":"x","args":["` + strings.Repeat("a", 1000001) + `"]}`, 413, "body larger than 1000000 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := apiDo(t, ts, tc.method, tc.path, apiToken, tc.body)
			if r.status != tc.status || !strings.Contains(r.body["error"].(string), tc.reason) {
				t.Fatalf("%d %s, want %d with %q", r.status, r.raw, tc.status, tc.reason)
			}
		})
	}
}

func TestAPIEmitReachesExactlyTheMembers(t *testing.T) {
	_, ts := newTestInstance(t, apiConfig)
	a, _ := member(t, ts, "red")
	b, bID := member(t, ts, "red", "blue")
	c, _ := member(t, ts, "green")
	admin := dialWS(t, ts)
	admin.send(`40/admin,`)
	if got := admin.read(); !strings.HasPrefix(got, `40/admin,{"sid":"`) {
		t.Fatalf("admin connect %q", got)
	}

	r := apiDo(t, ts, "POST", "/api/v1/emit", apiToken, `{"rooms":["red"],"event":"news","args":[{"x": 1}, "two", null]}`)
	if r.status != 202 || r.raw != `{"ok":true}`+"\n" {
		t.Fatalf("emit: %d %s", r.status, r.raw)
	}
	for _, m := range []*wsClient{a, b} {
		if got := m.read(); got != `42["news",{"x":1},"two",null]` {
			t.Fatalf("member got %q", got)
		}
	}
	// Except a room, and another namespace.
	apiDo(t, ts, "POST", "/api/v1/emit", apiToken, `{"rooms":["red","green"],"except":["blue"],"event":"e2"}`)
	apiDo(t, ts, "POST", "/api/v1/emit", apiToken, `{"namespace":"/admin","event":"e3","args":[3]}`)
	apiDo(t, ts, "POST", "/api/v1/emit", apiToken, `{"rooms":["`+bID+`"],"event":"e4"}`)
	if got := a.read(); got != `42["e2"]` {
		t.Fatalf("a got %q", got)
	}
	if got := c.read(); got != `42["e2"]` {
		t.Fatalf("c got %q", got)
	}
	if got := admin.read(); got != `42/admin,["e3",3]` {
		t.Fatalf("admin got %q", got)
	}
	if got := b.read(); got != `42["e4"]` {
		t.Fatalf("b got %q (b is in blue: no e2)", got)
	}
	for _, m := range []*wsClient{a, b, c, admin} {
		m.silent(150 * time.Millisecond)
	}
}

func TestAPIFetchSocketsAndRooms(t *testing.T) {
	_, ts := newTestInstance(t, apiConfig)
	_, aID := member(t, ts, "red")
	_, bID := member(t, ts, "red", "blue")
	_, cID := member(t, ts)

	var got struct {
		Sockets []struct {
			ID        string
			Rooms     []string
			Data      any
			Handshake map[string]any
		}
		Servers struct {
			Expected, Answered int
			LocalOnly          bool `json:"local_only"`
		}
	}
	fetch := func(query string) []string {
		t.Helper()
		r := apiDo(t, ts, "GET", "/api/v1/sockets"+query, apiToken, "")
		if r.status != 200 {
			t.Fatalf("sockets%s: %d %s", query, r.status, r.raw)
		}
		got.Sockets = nil
		if err := json.Unmarshal([]byte(r.raw), &got); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range got.Sockets {
			ids = append(ids, s.ID)
		}
		return ids
	}
	sorted := func(xs ...string) []string { slices.Sort(xs); return xs }
	if ids := fetch("?room=red"); !slices.Equal(ids, sorted(aID, bID)) {
		t.Fatalf("red: %v", ids)
	}
	if got.Servers.Expected != 1 || got.Servers.Answered != 1 || !got.Servers.LocalOnly {
		t.Fatalf("servers %+v", got.Servers)
	}
	for _, s := range got.Sockets {
		want := []string{s.ID, "red"}
		if s.ID == bID {
			want = append(want, "blue")
		}
		if !slices.Equal(s.Rooms, want) || s.Data != nil {
			t.Errorf("socket %s: rooms %v data %v", s.ID, s.Rooms, s.Data)
		}
		if s.Handshake["address"] != "127.0.0.1" || s.Handshake["url"] != "/socket.io/?EIO=4&transport=websocket" ||
			s.Handshake["query"].(map[string]any)["EIO"] != "4" || s.Handshake["auth"] == nil {
			t.Errorf("handshake %v", s.Handshake)
		}
	}
	if ids := fetch("?namespace=/&room=blue&room=red&except=blue"); !slices.Equal(ids, []string{aID}) {
		t.Fatalf("red or blue except blue: %v", ids)
	}
	if ids := fetch(""); !slices.Equal(ids, sorted(aID, bID, cID)) {
		t.Fatalf("all: %v", ids)
	}
	if ids := fetch("?namespace=/admin"); len(ids) != 0 || got.Sockets == nil {
		t.Fatalf("admin: %v (want an empty list, not null)", ids)
	}

	r := apiDo(t, ts, "GET", "/api/v1/rooms", apiToken, "")
	if r.status != 200 || !strings.HasPrefix(r.raw, `{"rooms":["blue","red"],"servers":{"expected":1,"answered":1,"local_only":true}}`) {
		t.Fatalf("rooms: %d %s", r.status, r.raw)
	}
	if r := apiDo(t, ts, "GET", "/api/v1/rooms?namespace=/admin", apiToken, ""); !strings.HasPrefix(r.raw, `{"rooms":[],`) {
		t.Fatalf("admin rooms: %s", r.raw)
	}
}

func TestAPIJoinLeaveDisconnect(t *testing.T) {
	srv, ts := newTestInstance(t, apiConfig)
	a, aID := member(t, ts, "red")
	b, bID := member(t, ts)
	rooms := func(id string) []string { return srv.SocketIO.Namespace("/").RoomIndex().Rooms(id) }

	if r := apiDo(t, ts, "POST", "/api/v1/join", apiToken, `{"except":["red"],"join":["blue","green"]}`); r.status != 200 || r.raw != `{"ok":true}`+"\n" {
		t.Fatalf("join: %d %s", r.status, r.raw)
	}
	if got := rooms(bID); !slices.Equal(got, []string{bID, "blue", "green"}) {
		t.Fatalf("b rooms %v", got)
	}
	if got := rooms(aID); !slices.Equal(got, []string{aID, "red"}) {
		t.Fatalf("a rooms %v", got)
	}
	if r := apiDo(t, ts, "POST", "/api/v1/leave", apiToken, `{"rooms":["blue"],"leave":["green"]}`); r.status != 200 {
		t.Fatalf("leave: %d %s", r.status, r.raw)
	}
	if got := rooms(bID); !slices.Equal(got, []string{bID, "blue"}) {
		t.Fatalf("b rooms after leave %v", got)
	}
	// The joined room works for emits.
	apiDo(t, ts, "POST", "/api/v1/emit", apiToken, `{"rooms":["blue"],"event":"hi"}`)
	if got := b.read(); got != `42["hi"]` {
		t.Fatalf("b got %q", got)
	}

	// Leave the namespace only: the connection stays.
	if r := apiDo(t, ts, "POST", "/api/v1/disconnect", apiToken, `{"rooms":["blue"]}`); r.status != 200 {
		t.Fatalf("disconnect: %d %s", r.status, r.raw)
	}
	if got := b.read(); got != `41` {
		t.Fatalf("b got %q, want DISCONNECT", got)
	}
	b.send(`40`)
	if got := b.read(); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("b reconnect on the same connection: %q", got)
	}
	// Close the whole connection.
	apiDo(t, ts, "POST", "/api/v1/disconnect", apiToken, `{"rooms":["red"],"close":true}`)
	if got := a.read(); got != `41` {
		t.Fatalf("a got %q", got)
	}
	if !a.closed() {
		t.Fatal("a's connection stayed open")
	}
}

func TestAPIEmitWithAcks(t *testing.T) {
	_, ts := newTestInstance(t, apiConfig)
	a, _ := member(t, ts, "r")
	b, _ := member(t, ts, "r")
	mute, _ := member(t, ts, "r")
	done := make(chan apiReply, 1)
	start := time.Now()
	go func() {
		done <- apiDo(t, ts, "POST", "/api/v1/emit", apiToken, `{"rooms":["r"],"event":"q","args":[1],"ack_timeout":"600ms"}`)
	}()
	answer := func(c *wsClient, arg string) {
		f := c.read()
		if !strings.HasPrefix(f, "42") || !strings.HasSuffix(f, `["q",1]`) {
			t.Fatalf("got %q", f)
		}
		c.send("43" + strings.TrimSuffix(strings.TrimPrefix(f, "42"), `["q",1]`) + "[" + arg + "]")
	}
	answer(a, `{"from":"a"}`)
	answer(b, `"b"`)
	mute.read() // receives it, never answers
	r := <-done
	if took := time.Since(start); took < 600*time.Millisecond || took > 3*time.Second {
		t.Fatalf("answered after %v, want the ack timeout", took)
	}
	var got struct {
		Responses []json.RawMessage
		Servers   map[string]any
	}
	if err := json.Unmarshal([]byte(r.raw), &got); err != nil || r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	var resp []string
	for _, x := range got.Responses {
		resp = append(resp, string(x))
	}
	slices.Sort(resp)
	if !slices.Equal(resp, []string{`"b"`, `{"from":"a"}`}) || got.Servers["expected"] != 1.0 || got.Servers["answered"] != 1.0 {
		t.Fatalf("responses %v servers %v", resp, got.Servers)
	}
}

// api.redact_auth drops the named fields from what every socket keeps,
// with no auth plugin too: the API and the rules see the rest.
func TestAPIRedactAuth(t *testing.T) {
	_, ts := newTestInstance(t, `
server {
  api {
    token       = "`+apiToken+`"
    redact_auth = ["password", "pin"]
  }
}
namespace "/" {
  event "whoami" { ack = [auth] }
}
`)
	c := dialWS(t, ts)
	connectAs(t, c, `{"user":"ann","password":"hunter2","pin":1234,"nested":{"password":"kept"}}`)
	c.send(`421["whoami"]`)
	if got := c.read(); got != `431[{"user":"ann","nested":{"password":"kept"}}]` {
		t.Errorf("rules see auth as %s", got)
	}
	r := apiDo(t, ts, "GET", "/api/v1/sockets", apiToken, "")
	if r.status != 200 || !strings.Contains(r.raw, `"auth":{"user":"ann","nested":{"password":"kept"}}`) ||
		strings.Contains(r.raw, "hunter2") || strings.Contains(r.raw, "1234") {
		t.Fatalf("sockets: %d %s", r.status, r.raw)
	}
}
