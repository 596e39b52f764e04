package testkit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// fakeTB records how a helper ended the test: Skip and Fatal stop the
// helper as the real ones do (here with a panic that run recovers).
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

type stopped struct{}

func (f *fakeTB) Helper()                   {}
func (f *fakeTB) Skip(args ...any)          { f.skipped, f.msg = true, fmt.Sprint(args...); panic(stopped{}) }
func (f *fakeTB) Fatal(args ...any)         { f.failed, f.msg = true, fmt.Sprint(args...); panic(stopped{}) }
func (f *fakeTB) Skipf(s string, a ...any)  { f.Skip(fmt.Sprintf(s, a...)) }
func (f *fakeTB) Fatalf(s string, a ...any) { f.Fatal(fmt.Sprintf(s, a...)) }

func run(f *fakeTB, fn func(testing.TB)) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
		}
	}()
	fn(f)
}

func TestNeedSkipsOrFailsInCI(t *testing.T) {
	for _, ci := range []string{"", "false", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			f := &fakeTB{}
			run(f, func(tb testing.TB) { Need(tb, "no-such-tool-socketfleet") })
			if ci == "true" {
				if !f.failed || f.skipped {
					t.Fatalf("CI=true: want a failure, got skipped=%v failed=%v", f.skipped, f.failed)
				}
			} else if !f.skipped || f.failed {
				t.Fatalf("CI=%q: want a skip, got skipped=%v failed=%v", ci, f.skipped, f.failed)
			}
			if !strings.Contains(f.msg, "no-such-tool-socketfleet is missing: install no-such-tool-socketfleet") {
				t.Errorf("message %q", f.msg)
			}
		})
	}
	for _, c := range []struct {
		name, hint string
		need       func(testing.TB)
	}{
		{"hint", "apt-get install redis-server", func(tb testing.TB) { Need(tb, "redis-server") }},
		{"npm", "make e2e-deps", func(tb testing.TB) { NeedNPM(tb, "no-such-npm-package-socketfleet") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("CI", "")
			if c.name == "hint" {
				t.Setenv("PATH", t.TempDir()) // and no redis-server in the sbin folders either
				if _, err := os.Stat("/usr/sbin/redis-server"); err == nil {
					t.Skip("redis-server in /usr/sbin")
				}
			}
			if _, err := plugintest.LookTool("node"); c.name == "npm" && err != nil {
				c.hint = "nodejs" // NeedNPM asks for node first
			}
			f := &fakeTB{}
			run(f, c.need)
			if !f.skipped || !strings.Contains(f.msg, c.hint) {
				t.Errorf("skipped=%v message %q, want a skip saying %q", f.skipped, f.msg, c.hint)
			}
		})
	}
	t.Run("present", func(t *testing.T) {
		t.Setenv("CI", "true")
		if p := Need(t, "go")[0]; !strings.HasSuffix(p, "/go") {
			t.Errorf("Need(go) = %q", p)
		}
	})
}

func TestBuffer(t *testing.T) {
	b := &Buffer{Max: 5}
	fmt.Fprint(b, "abc\n")
	fmt.Fprint(b, "defgh")
	if got := b.String(); got != "abc\nd" {
		t.Errorf("String = %q", got)
	}
	if got := b.Lines(); len(got) != 2 || got[1] != "d" {
		t.Errorf("Lines = %q", got)
	}
}

func TestFreePorts(t *testing.T) {
	base := FreePorts(t, 3)
	for i := range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	if a := FreeAddr(t); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Errorf("FreeAddr = %q", a)
	}
}

func TestWait(t *testing.T) {
	n := 0
	WaitFor(t, time.Second, "three calls", func() bool { n++; return n == 3 })
	if Poll(50*time.Millisecond, func() bool { return false }) {
		t.Error("Poll of a false condition reported true")
	}
	f := &fakeTB{}
	run(f, func(tb testing.TB) {
		WaitForState(tb, 30*time.Millisecond, "the moon", func() (bool, string) { return false, "cheese" })
	})
	if !f.failed || !strings.Contains(f.msg, "the moon") || !strings.Contains(f.msg, "cheese") {
		t.Errorf("failed=%v message %q", f.failed, f.msg)
	}
}

func TestStartStop(t *testing.T) {
	p := Start(t, Command("/bin/sh", []string{"PATH=/usr/bin:/bin"}, "-c", "echo out; echo err >&2; exec sleep 30"))
	WaitFor(t, 5*time.Second, "both lines", func() bool { return len(p.Out.Lines()) == 2 })
	if !p.Stop(5 * time.Second) {
		t.Error("sleep did not end on SIGTERM")
	}
	// A process that ignores SIGTERM is killed after the grace period.
	p = Start(t, Command("/bin/sh", []string{"PATH=/usr/bin:/bin"}, "-c", `trap "" TERM; echo ready; while :; do sleep 1; done`))
	WaitFor(t, 5*time.Second, "ready", func() bool { return p.Out.String() == "ready\n" })
	start := time.Now()
	if p.Stop(200 * time.Millisecond) {
		t.Error("Stop says a process that ignores SIGTERM ended on it")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Stop took %v", d)
	}
	if code := p.WaitExit(t, time.Second); code != -1 {
		t.Errorf("exit code %d, want -1 (killed)", code)
	}
}

func TestBuildOnce(t *testing.T) {
	a := Build(t, "./internal/testkit/testdata/hello")
	b := Build(t, "./internal/testkit/testdata/hello")
	if a != b {
		t.Errorf("two builds: %s, %s", a, b)
	}
	out, err := exec.Command(a, "x").Output()
	if err != nil || string(out) != "[x]\n" {
		t.Errorf("hello: %q %v", out, err)
	}
	dst := Install(t, "./internal/testkit/testdata/hello", t.TempDir()+"/p/hello")
	if out, err := exec.Command(dst).Output(); err != nil || string(out) != "[]\n" {
		t.Errorf("installed hello: %q %v", out, err)
	}
}
