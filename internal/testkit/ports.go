package testkit

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// FreePort returns a TCP port free on 127.0.0.1 a moment ago (another
// process may take it before the test does; the kernel rarely hands it out
// again so soon).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr is FreePort as "127.0.0.1:port".
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}

// FreePorts returns base such that base .. base+n-1 are free on 127.0.0.1,
// for programs that take a base port (examples/cluster's run.sh).
func FreePorts(t testing.TB, n int) int {
	t.Helper()
	// Below Linux's ephemeral range (32768 and up): there, the ports after
	// a free one are the next ones other tests' connections take.
	for range 200 {
		base := 20000 + rand.IntN(12000)
		ok := true
		for i := range n {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no run of %d free ports", n)
	return 0
}
