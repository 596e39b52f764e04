package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

// SIGHUP reaches the certificate store through the reload: a pair replaced
// by one of the same size and modification times, which the poll does not
// see, is served from the next handshake on.
func TestSIGHUPLoadsTheCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t)
	c1, k1 := ca.Issue(t, 1)
	certFile, keyFile := testkit.WriteKeyPair(t, dir, c1, k1)
	cfg := fmt.Sprintf(`
server {
  listen = env("LISTEN_ADDR")
  tls {
    cert_file = %q
    key_file  = %q
  }
}
namespace "/" {}
`, certFile, keyFile)
	path := filepath.Join(dir, "c.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreeAddr(t)
	srv := testkit.Start(t, testkit.Command(buildBinary(t), []string{"LISTEN_ADDR=" + addr}, "run", "--config", path))
	defer stopServer(t, srv)
	serial := func() int64 {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			return -1
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	testkit.WaitFor(t, 10*time.Second, "the TLS listener", func() bool { return serial() == 1 })

	ca.ReplaceKeyPairUnseen(t, dir, 2)
	time.Sleep(2500 * time.Millisecond) // two polls and their settle time
	if got := serial(); got != 1 {
		t.Fatalf("the poll saw an unchanged-looking pair: serial %d", got)
	}
	_ = srv.Signal(syscall.SIGHUP)
	testkit.WaitFor(t, 5*time.Second, "SIGHUP to load the pair", func() bool { return serial() == 2 })
}
