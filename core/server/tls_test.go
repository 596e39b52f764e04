package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketfleet/socketfleet/internal/testkit"
)

// tlsInstance serves testConfig with a tls block over the key pair in dir
// on a loopback port; it returns the instance and its host:port.
func tlsInstance(t *testing.T, dir string) (*Server, string) {
	t.Helper()
	src := strings.Replace(testConfig, "server {", fmt.Sprintf("server {\n  tls {\n    cert_file = %q\n    key_file = %q\n  }",
		filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")), 1)
	// The sessions idle while the files change: no heartbeat may end them.
	src = strings.NewReplacer(`"300ms"`, `"25s"`, `"200ms"`, `"20s"`).Replace(src)
	s := New(parseTestConfig(t, src), testLog(), "test")
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.startTLS(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, s.tlsListener(l)); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, l.Addr().String()
}

// dialWSS opens a Socket.IO session over wss:// trusting ca, connects it
// to "/", and returns it with the serial of the certificate it was shown.
func dialWSS(t *testing.T, addr string, ca *testkit.CA) (*wsClient, int64) {
	t.Helper()
	d := &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, HandshakeTimeout: 3 * time.Second}
	w := openWS(t, d, "wss://"+addr)
	w.send("40")
	if got := w.read(); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("connect reply %q", got)
	}
	if got := w.read(); !strings.HasPrefix(got, `42["auth"`) { // on_connect's emit
		t.Fatalf("on_connect emit %q", got)
	}
	st := w.c.NetConn().(*tls.Conn).ConnectionState()
	return w, st.PeerCertificates[0].SerialNumber.Int64()
}

// pollingSerial opens an Engine.IO session over https:// long-polling with
// a client that would speak h2 if offered, and returns the certificate's
// serial; the server must have answered in HTTP/1.1.
func pollingSerial(t *testing.T, addr string, ca *testkit.CA) int64 {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 3 * time.Second}).Get("https://" + addr + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), `0{"sid":"`) {
		t.Fatalf("polling handshake: %d %q", resp.StatusCode, body)
	}
	if resp.Proto != "HTTP/1.1" || resp.TLS.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("protocol %s, ALPN %q; want HTTP/1.1 (no h2 on the WebSocket listener)", resp.Proto, resp.TLS.NegotiatedProtocol)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
}

// waitSerial waits until a new handshake shows the certificate serial.
func waitSerial(t *testing.T, addr string, ca *testkit.CA, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := pollingSerial(t, addr, ca)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("new handshakes still see serial %d, want %d", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exchange checks an open session still carries messages both ways.
func exchange(w *wsClient, n int) {
	w.t.Helper()
	w.send(fmt.Sprintf(`42["message",%d]`, n))
	if got, want := w.read(), fmt.Sprintf(`42["message-back",%d]`, n); got != want {
		w.t.Fatalf("reply %q, want %q", got, want)
	}
}

func TestTLSCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t)
	c1, k1 := ca.Issue(t, 1)
	testkit.WriteKeyPair(t, dir, c1, k1)
	s, addr := tlsInstance(t, dir)

	old, serial := dialWSS(t, addr, ca)
	if serial != 1 || pollingSerial(t, addr, ca) != 1 {
		t.Fatalf("serial %d, want 1", serial)
	}
	exchange(old, 1)
	// Both paths (WebSocket off net/http's, polling through it) see the
	// request as TLS: the handshake's `secure`.
	sessions := s.Engine.Sessions()
	if len(sessions) != 2 {
		t.Fatalf("%d sessions, want 2", len(sessions))
	}
	for _, sess := range sessions {
		if !sess.Handshake().Secure {
			t.Fatalf("session %s: handshake not secure", sess.ID())
		}
	}

	// Replaced: new handshakes get the new certificate, the open session
	// goes on over the session it negotiated.
	c2, k2 := ca.Issue(t, 2)
	testkit.WriteKeyPair(t, dir, c2, k2)
	waitSerial(t, addr, ca, 2)
	exchange(old, 2)
	if fresh, serial := dialWSS(t, addr, ca); serial != 2 {
		t.Fatalf("new wss client sees serial %d, want 2", serial)
	} else {
		exchange(fresh, 3)
	}

	// A bad pair (the key of another certificate) keeps the one in
	// service, and is counted.
	_, k3 := ca.Issue(t, 3)
	testkit.WriteKeyPair(t, dir, c2, k3)
	testkit.WaitFor(t, 5*time.Second, "the bad pair counted", func() bool { return s.certs.reloadErrors.Load() == 1 })
	if got := pollingSerial(t, addr, ca); got != 2 {
		t.Fatalf("after a bad pair new handshakes see serial %d, want 2 (the old one)", got)
	}
	exchange(old, 4)

	// Fixed: loaded.
	c4, k4 := ca.Issue(t, 4)
	testkit.WriteKeyPair(t, dir, c4, k4)
	waitSerial(t, addr, ca, 4)
	exchange(old, 5)
	if n := s.certs.reloads.Load(); n != 2 {
		t.Fatalf("reloads = %d, want 2", n)
	}
	if s.Engine.Opened.Load() < 3 || s.SocketIO.Stats.Connections.Load() < 1 {
		t.Fatalf("sessions: %d opened, %d open", s.Engine.Opened.Load(), s.SocketIO.Stats.Connections.Load())
	}
}

// A reload (SIGHUP reaches Server.Reload through RunOptions.Reload) loads
// the files even when they look unchanged (same size and modification
// time), e.g. after a copy that kept the times, and whether or not the
// config itself reloads.
func TestTLSReloadLoadsTheFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t)
	c1, k1 := ca.Issue(t, 1)
	testkit.WriteKeyPair(t, dir, c1, k1)
	s, addr := tlsInstance(t, dir)
	if got := pollingSerial(t, addr, ca); got != 1 {
		t.Fatalf("serial %d", got)
	}
	ca.ReplaceKeyPairUnseen(t, dir, 2)
	time.Sleep(2 * certPollInterval)
	if got := pollingSerial(t, addr, ca); got != 1 {
		t.Fatalf("the poll saw an unchanged-looking file: serial %d", got)
	}
	_, _ = s.Reload(context.Background()) // this instance has no config file to reload
	if got := pollingSerial(t, addr, ca); got != 2 {
		t.Fatalf("after the reload: serial %d", got)
	}
}

// A plain-HTTP client on the TLS port is told to use TLS, and counted.
func TestTLSPlainClientRefused(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t)
	c1, k1 := ca.Issue(t, 1)
	testkit.WriteKeyPair(t, dir, c1, k1)
	s, addr := tlsInstance(t, dir)
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + addr + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "use https:// or wss://") {
		t.Fatalf("plain HTTP to the TLS port: %d %q", resp.StatusCode, body)
	}
	testkit.WaitFor(t, 3*time.Second, "the failed handshake counted", func() bool { return s.accept.tlsErrors.Load() == 1 })
	var found bool
	for _, c := range s.snapshot().Counters {
		found = found || c.Name == "tls_handshake_errors_total" && c.Value == 1
	}
	if !found {
		t.Fatal("no tls_handshake_errors_total 1 in the metrics")
	}
}

// The metrics listener speaks TLS with the same certificate, or plain
// HTTP with metrics = false.
func TestTLSMetricsListener(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t)
	c1, k1 := ca.Issue(t, 9)
	testkit.WriteKeyPair(t, dir, c1, k1)
	for _, tc := range []struct {
		extra, scheme string
	}{{"", "https"}, {"\n    metrics = false", "http"}} {
		src := fmt.Sprintf("server {\n  tls {\n    cert_file = %q\n    key_file = %q%s\n  }\n}\n",
			filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), tc.extra)
		s := New(parseTestConfig(t, src), testLog(), "test")
		ctx, cancel := context.WithCancel(context.Background())
		if err := s.startTLS(ctx); err != nil {
			t.Fatal(err)
		}
		addr := testkit.FreeAddr(t)
		stop, err := s.serveMetricsOn(addr)
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}
		resp, err := (&http.Client{Transport: tr, Timeout: 3 * time.Second}).Get(tc.scheme + "://" + addr + "/metrics")
		if err != nil {
			t.Fatalf("%s: %v", tc.scheme, err)
		}
		resp.Body.Close()
		// No metrics plugin here: 404 says the listener answered.
		if resp.StatusCode != http.StatusNotFound || (tc.scheme == "https") != (resp.TLS != nil) {
			t.Fatalf("%s: %d, TLS %v", tc.scheme, resp.StatusCode, resp.TLS != nil)
		}
		stop()
		cancel()
		tr.CloseIdleConnections()
	}
}
