package routing

import "testing"

func TestEmitToSenderUser(t *testing.T) {
	r, _ := newRouter(t, `
namespace "/" {
  event "read" {
    emit_to_sender_user {}
    emit_to_sender_user {
      event         = "read:sync"
      args          = [args[0].id, user]
      except_sender = true
    }
  }
}`)
	s := newFake("s1")
	s.user = "u42"
	send(r, s, ev("read", true, `{"id": 7}`, "+b"))
	eqList(t, "broadcasts", s.broadcasts,
		`user:u42||["read",{"id": 7}] +b`,
		`user:u42|s1|["read:sync",7,"u42"]`)
	eqList(t, "acks", s.acks, `[{"ok":true}]`)

	// Without a user id (no auth plugin) nothing is sent; the rule succeeds.
	anon := newFake("s2")
	send(r, anon, ev("read", true, `{"id": 7}`))
	eqList(t, "anonymous broadcasts", anon.broadcasts)
	eqList(t, "anonymous acks", anon.acks, `[{"ok":true}]`)
}
