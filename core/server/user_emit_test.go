package server

import (
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/core/routing"
	"github.com/socketfleet/socketfleet/core/socketio/localcluster"
)

const userEmitConfig = `
namespace "/" {
  event "read" {
    emit_to_sender_user {
      event = "read:sync"
      args  = [args[0], user]
    }
  }
  event "typing" {
    emit_to_sender_user { except_sender = true }
  }
}
`

// emit_to_sender_user reaches every socket of the sender's user (in room
// user:<id>, joined from the auth decision) on every instance, as a
// broadcast does, and no one else's.
func TestEmitToSenderUserAcrossInstances(t *testing.T) {
	hub := &localcluster.Hub{}
	instance := func() *wsDialer {
		srv, ts := newPluginInstance(t, userEmitConfig, routing.Plugins{Auth: &tokenAuth{}})
		srv.attachCluster(hub.Join())
		return &wsDialer{t: t, dial: func() *wsClient { return dialWS(t, ts) }}
	}
	a, b := instance(), instance()
	ann1, ann2, annB, bob := a.as("ann"), a.as("ann"), b.as("ann"), b.as("bob")

	ann1.send(`42["read",7]`)
	for _, c := range []*wsClient{ann1, ann2, annB} {
		if got := c.read(); got != `42["read:sync",7,"ann"]` {
			t.Fatalf("read sync %q", got)
		}
	}
	ann2.send(`42["typing",{"on":true}]`)
	for _, c := range []*wsClient{ann1, annB} {
		if got := c.read(); got != `42["typing",{"on":true}]` {
			t.Fatalf("typing %q", got)
		}
	}
	ann2.silent(200 * time.Millisecond) // except_sender
	bob.silent(100 * time.Millisecond)
}

type wsDialer struct {
	t    *testing.T
	dial func() *wsClient
}

// as connects a new socket authenticated as user.
func (d *wsDialer) as(user string) *wsClient {
	c := d.dial()
	connectAs(d.t, c, `{"token":"ok:`+user+`"}`)
	return c
}
