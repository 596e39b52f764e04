package socketio

import (
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/core/engineio"
)

// A broadcast writes to a socket's session directly (rooms.Direct) only
// when nothing can hold its traffic back: with connection state recovery a
// recovered socket's live traffic waits behind its replay (Socket.hold),
// which only Deliver honours.
func TestDirectDeliveryOnlyWithoutRecovery(t *testing.T) {
	sess := &engineio.Session{}
	for _, on := range []bool{false, true} {
		srv := NewServer(Options{})
		srv.AddNamespace("/", nil, nil)
		if on {
			srv.SetRecovery(&Recovery{Store: nopStore{}, JournalAge: time.Minute, JournalEntries: 10, JournalBytes: 1 << 20})
		}
		s := &Socket{client: &client{srv: srv, sess: sess}}
		switch got := s.DirectSession(); {
		case on && got != nil:
			t.Fatal("with recovery on, a broadcast would write past the socket's hold")
		case !on && got != sess:
			t.Fatalf("without recovery: DirectSession %p, want the client's session %p", got, sess)
		}
	}
}
