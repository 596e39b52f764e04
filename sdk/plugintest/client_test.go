package plugintest_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

const openPacket = `0{"sid":"s1","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`

// fakeServer answers the handshake with open, each POST with "ok" (and
// records it), and each later GET with the next of polls.
func fakeServer(t *testing.T, open string, polls ...string) (addr string, posts func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		switch {
		case r.Method == http.MethodPost:
			b, _ := io.ReadAll(r.Body)
			got = append(got, string(b))
			_, _ = w.Write([]byte("ok"))
		case r.URL.Query().Get("sid") == "":
			_, _ = w.Write([]byte(open))
		case len(polls) > 0:
			_, _ = w.Write([]byte(polls[0]))
			polls = polls[1:]
		default:
			_, _ = w.Write([]byte("6"))
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func TestClientWire(t *testing.T) {
	addr, posts := fakeServer(t, openPacket, "2\x1e40{\"sid\":\"k1\"}\x1e42[\"me\",\"u1\",{\"a\":1}]", "6", "41")
	c, err := plugintest.Dial(addr, `{"token":"t"}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "k1" || c.SID != "s1" {
		t.Errorf("ids %q %q", c.ID, c.SID)
	}
	ev, err := c.Read()
	if err != nil || ev.Name != "me" || len(ev.Args) != 2 || string(ev.Args[1]) != `{"a":1}` {
		t.Errorf("Read: %+v, %v", ev, err)
	}
	if err := c.Emit("chat", "hi", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(); err == nil || !strings.Contains(err.Error(), "DISCONNECT") {
		t.Errorf("Read after 41: %v", err)
	}
	// The ping was answered before anything else was sent after CONNECT.
	want := []string{`40{"token":"t"}`, "3", `42["chat","hi",2]`}
	if got := posts(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("POSTs %q, want %q", got, want)
	}
}

func TestClientRefused(t *testing.T) {
	addr, posts := fakeServer(t, openPacket, `44{"message":"invalid token","data":{"code":7}}`)
	_, err := plugintest.Dial(addr, "")
	var ce *plugintest.ConnectError
	if !errors.As(err, &ce) || ce.Message != "invalid token" || string(ce.Data) != `{"code":7}` {
		t.Fatalf("Dial: %v", err)
	}
	if got := posts(); len(got) != 2 || got[0] != "40" || got[1] != "1" {
		t.Errorf("POSTs %q: want CONNECT without payload, then close", got)
	}
}

// TestClientStrict: what a conforming server would not send is an error.
func TestClientStrict(t *testing.T) {
	for _, c := range []struct{ name, open, poll, want string }{
		{"open without pingInterval", `0{"sid":"s1","upgrades":[],"pingTimeout":1,"maxPayload":1}`, "", "open packet"},
		{"not an open packet", `40`, "", "open packet"},
		{"CONNECT_ERROR as a string", openPacket, `44"nope"`, "CONNECT_ERROR"},
		{"CONNECT without sid", openPacket, `40{}`, "CONNECT reply"},
		{"another namespace", openPacket, `40/admin,{"sid":"x"}`, "namespace"},
		{"binary", openPacket, `451-["x",{"_placeholder":true,"num":0}]`, "binary"},
		{"unknown Engine.IO type", openPacket, `9`, "Engine.IO packet"},
		{"close", openPacket, `1`, "closed the session"},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr, _ := fakeServer(t, c.open, c.poll)
			if _, err := plugintest.Dial(addr, ""); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Dial: %v, want an error about %q", err, c.want)
			}
		})
	}
	t.Run("payload not an object", func(t *testing.T) {
		if _, err := plugintest.Dial("127.0.0.1:1", `[1]`); err == nil {
			t.Error("want an error")
		}
	})
}

func TestClientReadTimeout(t *testing.T) {
	addr, _ := fakeServer(t, openPacket, `40{"sid":"k1"}`)
	c, err := plugintest.Dial(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	c.Timeout = 200 * time.Millisecond
	if _, err := c.Read(); err == nil || !strings.Contains(err.Error(), "nothing from the server") {
		t.Errorf("Read with only noops: %v", err)
	}
}
