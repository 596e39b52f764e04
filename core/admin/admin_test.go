package admin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

func raw(xs ...string) [][]byte {
	out := make([][]byte, len(xs))
	for i, x := range xs {
		out[i] = []byte(x)
	}
	return out
}

func TestParseAction(t *testing.T) {
	cases := []struct {
		name string
		args [][]byte
		want op
		err  string
	}{
		{"emit", raw(`"/"`, `"room"`, `"ev"`, `1`, `{"a":2}`), op{nsp: "/", filter: "room", event: "ev", args: raw(`1`, `{"a":2}`)}, ""},
		{"emit", raw(`"/"`, `null`, `"ev"`), op{nsp: "/", event: "ev", args: raw()}, ""},
		{"emit", raw(`"/"`, `null`), op{}, "needs 3"},
		{"emit", raw(`"/"`, `null`, `""`), op{}, "event: empty"},
		{"emit", raw(`"/"`, `null`, `"disconnect"`), op{}, "reserved"},
		{"join", raw(`"/"`, `"r"`), op{nsp: "/", room: "r"}, ""},
		{"join", raw(`"/"`, `"r"`, `"sid"`), op{nsp: "/", room: "r", filter: "sid"}, ""},
		{"join", raw(`"/"`, `""`), op{}, "room: empty"},
		{"leave", raw(`"/"`, `3`), op{}, "room: want a string"},
		{"_disconnect", raw(`"/"`, `true`, `"sid"`), op{nsp: "/", close: true, filter: "sid"}, ""},
		{"_disconnect", raw(`"/"`, `"yes"`), op{}, "close: want a boolean"},
		{"_disconnect", raw(`{}`, `true`), op{}, "namespace: want a string"},
	}
	for _, c := range cases {
		got, err := parseAction(c.name, c.args)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %s: error %v, want %q", c.name, c.args, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", c.name, c.args, err)
			continue
		}
		g, _ := json.Marshal(got.fields())
		w, _ := json.Marshal(c.want.fields())
		if string(g) != string(w) || len(got.args) != len(c.want.args) {
			t.Errorf("%s %s: %s %d args, want %s %d", c.name, c.args, g, len(got.args), w, len(c.want.args))
		}
	}
}

func TestSessionsBoundedAndExpire(t *testing.T) {
	s := newSessions(3, time.Hour)
	ids := []string{s.create("a"), s.create("b"), s.create("c")}
	if u, ok := s.get(ids[1]); !ok || u != "b" {
		t.Fatalf("get: %q %v", u, ok)
	}
	s.create("d") // full: the oldest goes
	if _, ok := s.get(ids[0]); ok {
		t.Fatal("the oldest session was kept over the bound")
	}
	if len(s.m) != 3 {
		t.Fatalf("%d sessions, want 3", len(s.m))
	}
	if _, ok := s.get("nope"); ok {
		t.Fatal("unknown id accepted")
	}
	short := newSessions(3, time.Millisecond)
	id := short.create("a")
	time.Sleep(5 * time.Millisecond)
	if _, ok := short.get(id); ok {
		t.Fatal("expired session accepted")
	}
}

func TestPrefill(t *testing.T) {
	index := []byte(`<html><head>` + robotoLink + mdiLink + `<link href="css/app.css" rel="stylesheet"></head><body><script src="js/app.js"></script></body></html>`)
	out := string(prefill(index, "/rt", true))
	if strings.Contains(out, "https://") {
		t.Fatalf("outside links left: %s", out)
	}
	if !strings.Contains(out, `<link rel="stylesheet" href="mdi/css/materialdesignicons.min.css">`) {
		t.Fatalf("no local icons: %s", out)
	}
	script := strings.Index(out, `s.setItem("path","/rt")`)
	if script < 0 || script > strings.Index(out, `<script src="js/app.js">`) {
		t.Fatalf("the prefill must run before the UI's script: %s", out)
	}
	if out := string(prefill(index, "/socket.io", false)); strings.Contains(out, "mdi/css") || strings.Contains(out, "https://") {
		t.Fatalf("without local icons: %s", out)
	}
}

// A Node server's socket (data._admin) and ours (plain data) as the UI gets them.
func TestRemoteSocket(t *testing.T) {
	node := remote("/", sdk.RemoteSocket{ID: "n1", Rooms: []string{"n1", "r"},
		Data:      []byte(`{"_admin":{"clientId":"abc","transport":"websocket"},"user":"u"}`),
		Handshake: []byte(`{"address":"1.2.3.4","auth":{"token":"secret"},"query":{"transport":"polling"}}`)})
	if node.ClientID != "abc" || node.Transport != "websocket" || string(node.Data) != `{"user":"u"}` {
		t.Fatalf("node socket: %+v", node)
	}
	if strings.Contains(string(node.Handshake), "secret") {
		t.Fatalf("auth shown: %s", node.Handshake)
	}
	ours := remote("/", sdk.RemoteSocket{ID: "g1", Data: []byte(`{}`), Handshake: []byte(`{"query":{"transport":"polling"}}`)})
	if ours.ClientID != "g1" || ours.Transport != "polling" || string(ours.Data) != `{}` {
		t.Fatalf("our socket: %+v", ours)
	}
	null := remote("/", sdk.RemoteSocket{ID: "g2", Data: []byte(`null`), Handshake: []byte(`{}`)})
	if string(null.Data) != `{}` {
		t.Fatalf("null data: %s", null.Data)
	}
}
