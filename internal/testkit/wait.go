package testkit

import (
	"net/http"
	"testing"
	"time"
)

// Poll checks cond until it holds or within has passed, and reports
// whether it held: for tests that say themselves what failed. The pause
// between checks grows from 10 ms to 100 ms: quick for a state that comes
// soon, light on what it asks (an HTTP API) when it takes seconds.
func Poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	pause := 10 * time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 100*time.Millisecond)
	}
	return true
}

// WaitFor fails the test unless cond holds within the given time; what
// names the awaited state in the message.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(within, cond) {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
}

// WaitForState is WaitFor for a cond that also says what it saw, which
// the failure message shows (its last answer).
func WaitForState(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	if !Poll(within, func() bool {
		var ok bool
		ok, last = cond()
		return ok
	}) {
		t.Fatalf("timed out after %v waiting for %s; last: %s", within, what, last)
	}
}

// WaitHTTP waits until a GET of url answers 200 OK.
func WaitHTTP(t testing.TB, within time.Duration, url string) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	var last string
	if !Poll(within, func() bool {
		res, err := c.Get(url)
		if err != nil {
			last = err.Error()
			return false
		}
		res.Body.Close()
		last = res.Status
		return res.StatusCode == http.StatusOK
	}) {
		t.Fatalf("%s did not answer 200 within %v; last: %s", url, within, last)
	}
}
