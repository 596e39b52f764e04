package socketio_test

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/engineio"
	"github.com/socketfleet/socketfleet/core/socketio"
	"github.com/socketfleet/socketfleet/internal/testkit"
)

// ackHandler asks every connecting client three questions with acks.
type ackHandler struct {
	mu      sync.Mutex
	results map[string]string
	done    chan struct{}
}

func (h *ackHandler) record(k, v string) {
	h.mu.Lock()
	h.results[k] = v
	n := len(h.results)
	h.mu.Unlock()
	if n == 3 {
		close(h.done)
	}
}

func (h *ackHandler) Connect(*socketio.Socket) error { return nil }
func (h *ackHandler) Connected(s *socketio.Socket) {
	s.EmitWithAck("question", [][]byte{[]byte(`"what is it?"`), []byte(`{"z":1,"a":2}`)}, nil, 5*time.Second,
		func(args, att [][]byte, err error) {
			if err != nil {
				h.record("question", "error: "+err.Error())
				return
			}
			h.record("question", string(bytes.Join(args, []byte(","))))
		})
	s.EmitWithAck("binary", [][]byte{[]byte(`{"_placeholder":true,"num":0}`)}, [][]byte{{7, 8, 9}}, 5*time.Second,
		func(args, att [][]byte, err error) {
			if err != nil || len(att) != 1 {
				h.record("binary", "error")
				return
			}
			h.record("binary", string(bytes.Join(args, []byte(",")))+" "+string(att[0]))
		})
	s.EmitWithAck("ignored", nil, nil, 300*time.Millisecond, func(args, att [][]byte, err error) {
		if err == socketio.ErrAckTimeout {
			h.record("ignored", "timeout")
			return
		}
		h.record("ignored", "unexpected answer")
	})
}
func (h *ackHandler) Event(s *socketio.Socket, e *socketio.Event)    {}
func (h *ackHandler) Disconnected(s *socketio.Socket, reason string) {}

// TestServerToClientAcksWithRealClient: the npm socket.io-client answers
// acks the server asks for, JSON and binary, and a missing answer times out.
func TestServerToClientAcksWithRealClient(t *testing.T) {
	clientDir := testkit.NeedNPM(t, "socket.io-client")
	log := logrus.New()
	log.SetOutput(io.Discard)
	h := &ackHandler{results: map[string]string{}, done: make(chan struct{})}
	sio := socketio.NewServer(socketio.Options{Log: logrus.NewEntry(log)})
	sio.AddNamespace("/", h, nil)
	ts := httptest.NewServer(engineio.NewServer(engineio.Options{Log: logrus.NewEntry(log)}, sio))
	defer ts.Close()

	script := `
const { io } = require(process.argv[1]);
const socket = io(process.argv[2], { transports: ["websocket"] });
socket.on("question", (q, obj, ack) => ack("answer to " + q, obj));
socket.on("binary", (buf, ack) => ack({ len: buf.length }, Buffer.from("abc")));
socket.on("ignored", () => {});
setTimeout(() => process.exit(0), 3000);
`
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node := testkit.Start(t, exec.CommandContext(ctx, "node", "-e", script, clientDir, ts.URL))
	defer node.Kill()

	select {
	case <-h.done:
	case <-time.After(8 * time.Second):
		t.Fatalf("acks missing: %v; node output: %s", h.results, node.Out)
	}
	want := map[string]string{
		"question": `"answer to what is it?",{"z":1,"a":2}`,
		"binary":   `{"len":3},{"_placeholder":true,"num":0} abc`,
		"ignored":  "timeout",
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, v := range want {
		if h.results[k] != v {
			t.Errorf("%s: got %q, want %q", k, h.results[k], v)
		}
	}
}
