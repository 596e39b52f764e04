package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Sessions let the UI reconnect without the password (it keeps the id
// the server sent in its local storage). They live in this instance's
// memory, as with the Node package's default store: a UI sent to another
// instance logs in again.
const (
	maxSessions = 1024
	sessionTTL  = 24 * time.Hour
	// checkWait is how long a login waits for a free password check.
	checkWait = 2 * time.Second
)

// checkPassword compares the credentials with the configured ones. busy:
// too many checks were running to try.
func (a *Admin) checkPassword(user, password string) (ok, busy bool) {
	select {
	case a.checks <- struct{}{}:
	case <-time.After(checkWait):
		return false, true
	}
	defer func() { <-a.checks }()
	// The hash is compared whatever the username, so that the answer's
	// time does not tell whether the username was right.
	match := bcrypt.CompareHashAndPassword([]byte(a.cfg.PasswordHash), []byte(password)) == nil
	return match && subtle.ConstantTimeCompare([]byte(user), []byte(a.cfg.Username)) == 1, false
}

type session struct {
	user    string
	expires time.Time
}

// sessions is a bounded table of session ids; the oldest goes when full.
type sessions struct {
	mu  sync.Mutex
	m   map[string]session
	max int
	ttl time.Duration
}

func newSessions(max int, ttl time.Duration) *sessions {
	return &sessions{m: make(map[string]session), max: max, ttl: ttl}
}

func (s *sessions) create(user string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on Linux
	id := hex.EncodeToString(b[:])
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		var oldest string
		var at time.Time
		for k, v := range s.m {
			if v.expires.Before(now) {
				delete(s.m, k)
				continue
			}
			if oldest == "" || v.expires.Before(at) {
				oldest, at = k, v.expires
			}
		}
		if len(s.m) >= s.max {
			delete(s.m, oldest)
		}
	}
	s.m[id] = session{user: user, expires: now.Add(s.ttl)}
	return id
}

func (s *sessions) get(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	if !ok || time.Now().After(v.expires) {
		delete(s.m, id)
		return "", false
	}
	return v.user, true
}
