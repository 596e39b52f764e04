package main

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/socketfleet/socketfleet/sdk"
)

// The usage is asked for in several ways; each prints it on stdout, exits 0
// and starts nothing: the default listen address stays free.
func TestUsageStartsNothing(t *testing.T) {
	for _, args := range [][]string{nil, {"help"}, {"-h"}, {"--help"}, {"run", "--help"}, {"validate", "-h"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 {
			t.Errorf("%q: exit %d, want 0 (stderr %q)", args, code, errOut.String())
		}
		for _, want := range []string{"socket-server run", "socket-server validate", "socket-server version", "LOG_LEVEL", "env(\"NAME\")"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%q: usage lacks %q:\n%s", args, want, out.String())
			}
		}
	}
	// Nothing listened on the default port meanwhile (run() would have
	// served config.hcl's :8081 before this change).
	if l, err := net.Listen("tcp", "127.0.0.1:8081"); err == nil {
		l.Close()
	} else {
		t.Logf("port 8081 busy on this machine (%v): the check above is what matters", err)
	}
}

func TestFlagsWithoutACommandAreRefused(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--config", "x.hcl"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), "socket-server run --config x.hcl") {
		t.Errorf("the error does not say what to type: %q", errOut.String())
	}
}

func TestVersionNamesThePluginProtocol(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := fmt.Sprintf("plugin protocol %d", sdk.ProtocolVersion)
	if !strings.Contains(out.String(), want) {
		t.Errorf("version prints %q, want it to contain %q", out.String(), want)
	}
}
