package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// The bytes Node's adapter publishes for io.emit("news", 1) (protocol.md §4).
func TestEncodeMatchesNode(t *testing.T) {
	got, err := encodeMessage("AcNg6c", &sdk.AdapterMessage{Namespace: "/", Data: []byte(`["news",1]`)})
	if err != nil {
		t.Fatal(err)
	}
	want := "93a6" + hex.EncodeToString([]byte("AcNg6c")) +
		"83a4" + hex.EncodeToString([]byte("type")) + "02" +
		"a4" + hex.EncodeToString([]byte("data")) + "92a4" + hex.EncodeToString([]byte("news")) + "01" +
		"a3" + hex.EncodeToString([]byte("nsp")) + "a12f" +
		"83a5" + hex.EncodeToString([]byte("rooms")) + "90" +
		"a6" + hex.EncodeToString([]byte("except")) + "90" +
		"a5" + hex.EncodeToString([]byte("flags")) + "80"
	if hex.EncodeToString(got) != want {
		t.Fatalf("got  %x\nwant %s", got, want)
	}
}

func TestEncodeValues(t *testing.T) {
	m := &sdk.AdapterMessage{Namespace: "/chat", Rooms: []string{"a", "b"}, Except: []string{"c"}, Volatile: true,
		Data:        []byte(`["ev",{"z":1,"a":[true,null,-5,1.5,300,1e3,"s"]},{"_placeholder":true,"num":0}]`),
		Attachments: [][]byte{{1, 2, 3}}}
	b, err := encodeMessage("uid123", m)
	if err != nil {
		t.Fatal(err)
	}
	// Key order kept: z before a.
	if !bytes.Contains(b, []byte("\x82\xa1z\x01\xa1a\x97\xc3\xc0\xfb\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\xcd\x01\x2c\xcd\x03\xe8\xa1s")) {
		t.Fatalf("object not encoded as expected: %x", b)
	}
	if !bytes.Contains(b, []byte("\xc4\x03\x01\x02\x03")) {
		t.Fatalf("attachment not a bin: %x", b)
	}
	d, err := decodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.uid != "uid123" || d.typ != 2 {
		t.Fatalf("uid %q type %d", d.uid, d.typ)
	}
	want := *m
	want.Data = []byte(`["ev",{"z":1,"a":[true,null,-5,1.5,300,1000,"s"]},{"_placeholder":true,"num":0}]`)
	if !reflect.DeepEqual(d.msg, want) {
		t.Fatalf("round trip:\n got %+v %s\nwant %+v %s", d.msg, d.msg.Data, want, want.Data)
	}
	for _, bad := range []string{`{"a":1}`, `["x",{"_placeholder":true,"num":1}]`, `["x"`, `["x"] 1`} {
		if _, err := encodeMessage("u", &sdk.AdapterMessage{Data: []byte(bad)}); err == nil {
			t.Errorf("encoded %s", bad)
		}
	}
}

func TestDecodeNodeExtras(t *testing.T) {
	// [uid, {type:2, data:["e", Date(0) as ext -1, legacy ArrayBuffer ext 0, undefined ext 0, "<&>"]}, {rooms:["r"]}] without nsp.
	raw := []byte("\x93\xa3abc\x82\xa4type\x02\xa4data\x95\xa1e\xd6\xff\x00\x00\x00\x00\xc7\x02\x00\x09\x08\xd4\x00\x00\xa3<&>\x81\xa5rooms\x91\xa1r")
	d, err := decodeMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := sdk.AdapterMessage{Namespace: "/", Rooms: []string{"r"},
		Data:        []byte(`["e","1970-01-01T00:00:00.000Z",{"_placeholder":true,"num":0},null,"<&>"]`),
		Attachments: [][]byte{{9, 8}}}
	if !reflect.DeepEqual(d.msg, want) {
		t.Fatalf("got %+v %s", d.msg, d.msg.Data)
	}
}

func TestContract(t *testing.T) {
	r := testkit.StartRedis(t)
	raw := &plugin{}
	defer raw.close()
	p := plugintest.InProcess(t, raw)
	plugintest.CheckContract(t, p, plugintest.Options{Config: sdk.Config(fmt.Sprintf(`{"url":%q}`, r.URL()))})
	for _, bad := range []string{`{}`, `{"url":"http://x"}`} {
		if err := p.Configure(context.Background(), sdk.Config(bad)); err == nil {
			t.Errorf("Configure(%s) accepted", bad)
		}
	}
}

// collector is a running Subscribe that records what it delivers.
type collector struct {
	mu   sync.Mutex
	msgs []sdk.AdapterMessage
	done chan error
}

func subscribe(t *testing.T, a sdk.Adapter) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{done: make(chan error, 1)}
	go func() {
		c.done <- a.Subscribe(ctx, func(b []sdk.AdapterMessage) error {
			c.mu.Lock()
			c.msgs = append(c.msgs, b...)
			c.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-c.done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Subscribe returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Subscribe did not return after cancel")
		}
	})
	return c
}

// event returns the messages whose event name is ev.
func (c *collector) event(ev string) []sdk.AdapterMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []sdk.AdapterMessage
	for _, m := range c.msgs {
		var arr []json.RawMessage
		if json.Unmarshal(m.Data, &arr) == nil && len(arr) > 0 && string(arr[0]) == `"`+ev+`"` {
			out = append(out, m)
		}
	}
	return out
}

func (c *collector) running(t *testing.T) {
	t.Helper()
	select {
	case err := <-c.done:
		t.Fatalf("Subscribe returned early: %v", err)
	default:
	}
}

// await publishes a ping from pub until sub delivers one (its subscription
// is live), tolerating publish errors while Redis is away.
func await(t *testing.T, pub sdk.Adapter, sub *collector, ev string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(sub.event(ev)) == 0 {
		sub.running(t)
		if time.Now().After(deadline) {
			t.Fatalf("%s never delivered", ev)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = pub.Publish(ctx, []sdk.AdapterMessage{{Namespace: "/", Data: []byte(`["` + ev + `"]`)}})
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
}

func newInstance(t *testing.T, url string) sdk.Adapter { return newPlugin(t, url, "test") }

func newPlugin(t *testing.T, url, key string) sdk.Adapter {
	raw := &plugin{}
	t.Cleanup(raw.close)
	p := plugintest.InProcess(t, raw)
	if err := p.Configure(context.Background(), sdk.Config(fmt.Sprintf(`{"url":%q,"key":%q}`, url, key))); err != nil {
		t.Fatal(err)
	}
	return p.(sdk.Adapter)
}

func TestTwoInstances(t *testing.T) {
	r := testkit.StartRedis(t)
	a, b := newInstance(t, r.URL()), newInstance(t, r.URL())
	ca, cb := subscribe(t, a), subscribe(t, b)
	await(t, a, cb, "ping-a")
	await(t, b, ca, "ping-b")

	batch := []sdk.AdapterMessage{
		{Namespace: "/", Data: []byte(`["all",{"text":"hi","n":[1,2.5]}]`)},
		{Namespace: "/chat", Rooms: []string{"r1"}, Data: []byte(`["one-room","x"]`)},
		{Namespace: "/chat", Rooms: []string{"r1", "r2"}, Except: []string{"r3", "sid1"}, Volatile: true,
			Data:        []byte(`["bin",{"_placeholder":true,"num":0},"mid",{"_placeholder":true,"num":1}]`),
			Attachments: [][]byte{{0, 1, 2, 255}, bytes.Repeat([]byte{7}, 70000)}},
	}
	if err := a.Publish(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(cb.event("bin")) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // anything extra would show up now
	var got []sdk.AdapterMessage
	for _, ev := range []string{"all", "one-room", "bin"} {
		got = append(got, cb.event(ev)...)
	}
	want := append([]sdk.AdapterMessage(nil), batch...)
	want[0].Data = []byte(`["all",{"text":"hi","n":[1,2.5]}]`)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("b got\n%+v\nwant\n%+v", summarize(got), summarize(want))
	}
	for _, ev := range []string{"all", "one-room", "bin", "ping-a"} {
		if n := len(ca.event(ev)); n != 0 {
			t.Errorf("a delivered %d of its own %q messages", n, ev)
		}
	}
}

func summarize(ms []sdk.AdapterMessage) string {
	var sb strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&sb, "{%s rooms=%q except=%q vol=%v data=%s att=", m.Namespace, m.Rooms, m.Except, m.Volatile, m.Data)
		for _, a := range m.Attachments {
			fmt.Fprintf(&sb, "[%d bytes]", len(a))
		}
		sb.WriteString("}\n")
	}
	return sb.String()
}

// The channel a message goes to is Node's: the room channel for one room.
func TestChannels(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newInstance(t, r.URL())
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	ps := rdb.PSubscribe(context.Background(), "test#*")
	defer ps.Close()
	if _, err := ps.Receive(context.Background()); err != nil { // the subscription confirmation
		t.Fatal(err)
	}
	if err := a.Publish(context.Background(), []sdk.AdapterMessage{
		{Namespace: "/", Data: []byte(`["a"]`)},
		{Namespace: "/x", Rooms: []string{"r"}, Data: []byte(`["b"]`)},
		{Namespace: "/x", Rooms: []string{"r", "s"}, Data: []byte(`["c"]`)},
	}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m, err := ps.ReceiveMessage(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Channel)
	}
	if want := []string{"test#/#", "test#/x#r#", "test#/x#"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("channels %q, want %q", got, want)
	}
}

// A message whose channel is of another namespace than its packet, and
// non-broadcast garbage, are dropped.
func TestReceiverRules(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newInstance(t, r.URL())
	ca := subscribe(t, a)
	b := newInstance(t, r.URL())
	await(t, b, ca, "ping")
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	wrong, _ := encodeMessage("zzzzzz", &sdk.AdapterMessage{Namespace: "/other", Data: []byte(`["wrong-nsp"]`)})
	ok, _ := encodeMessage("zzzzzz", &sdk.AdapterMessage{Namespace: "/other", Data: []byte(`["right-nsp"]`)})
	ctx := context.Background()
	rdb.Publish(ctx, "test#/#", wrong)
	rdb.Publish(ctx, "test#/#", "garbage")
	rdb.Publish(ctx, "test#/other#", ok)
	deadline := time.Now().Add(5 * time.Second)
	for len(ca.event("right-nsp")) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(ca.event("right-nsp")) != 1 || len(ca.event("wrong-nsp")) != 0 {
		ca.mu.Lock()
		defer ca.mu.Unlock()
		t.Fatalf("got %s", summarize(ca.msgs))
	}
}

// Subscribe keeps running across a Redis restart and delivers again once
// go-redis has reconnected and re-subscribed.
func TestSurvivesRedisRestart(t *testing.T) {
	r := testkit.StartRedis(t)
	a, b := newInstance(t, r.URL()), newInstance(t, r.URL())
	cb := subscribe(t, b)
	await(t, a, cb, "before")
	r.Restart()
	await(t, a, cb, "after")
	cb.running(t)
}

// A Subscribe opened while Redis is down keeps running and starts
// delivering once Redis is up.
func TestSubscribeWhileRedisDown(t *testing.T) {
	r := testkit.StartRedis(t)
	a, b := newInstance(t, r.URL()), newInstance(t, r.URL())
	r.Kill()
	cb := subscribe(t, b)
	time.Sleep(500 * time.Millisecond)
	cb.running(t)
	r.Start()
	await(t, a, cb, "up")
}
