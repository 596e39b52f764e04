package testkit

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
)

// Redis is a throwaway redis-server on a free loopback port, without
// persistence, stopped when the test ends.
type Redis struct {
	Port int
	Proc *Process
	t    testing.TB
	args []string
}

// StartRedis needs redis-server (the tool rule of Need), starts it with
// extra arguments args and waits until it answers PING.
func StartRedis(t testing.TB, args ...string) *Redis {
	t.Helper()
	Need(t, "redis-server")
	r := &Redis{Port: FreePort(t), t: t, args: args}
	r.Start()
	return r
}

// Addr is "127.0.0.1:port".
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is "redis://127.0.0.1:port".
func (r *Redis) URL() string { return "redis://" + r.Addr() }

// Start starts the server (again, after Kill) on the same port.
func (r *Redis) Start() {
	r.t.Helper()
	args := append([]string{"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}, r.args...)
	r.Proc = Start(r.t, Command("redis-server", nil, args...))
	WaitForState(r.t, 10*time.Second, "redis-server on "+r.Addr()+" answering PING", func() (bool, string) {
		if r.Proc.Exited() {
			r.t.Fatalf("redis-server exited: %v\n%s", r.Proc.Err(), r.Proc.Out.String())
		}
		return Ping(r.Addr()), r.Proc.Out.String()
	})
}

// Kill stops the server at once (SIGKILL), dropping every connection.
func (r *Redis) Kill() { r.Proc.Kill() }

// Restart kills the server and starts it again on the same port.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Kill()
	r.Start()
}

// Ping reports whether a Redis at addr answers PING within a second.
func Ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := fmt.Fprint(c, "PING\r\n"); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}
