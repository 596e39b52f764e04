package server

// TLS on the instance's listeners (config.hcl: server.tls). The
// certificate lives in a certStore that every handshake asks
// (tls.Config.GetCertificate), so replacing the files changes what the
// next handshake gets while every open connection keeps its session.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
)

// certPollInterval is how often the certificate files are looked at; a
// stat of two files a second costs nothing worth counting.
const certPollInterval = time.Second

// certSettle is how long a change must stay still before it is loaded:
// tools write the certificate and the key one after the other, and
// loading between the two would find a mismatched pair.
const certSettle = 150 * time.Millisecond

// certStore holds the current certificate of a tls block and replaces it
// when the files change. A pair that does not load keeps the old
// certificate in service, logged and counted.
type certStore struct {
	certFile, keyFile string
	log               *logrus.Entry
	config            *tls.Config // for the listeners: asks cur on every handshake

	cur atomic.Pointer[tls.Certificate]

	mu    sync.Mutex // one load at a time; guards tried
	tried fileStamp  // the files as they were at the last load attempt

	reloads      atomic.Int64 // replaced after a change
	reloadErrors atomic.Int64 // changes that did not load (the old certificate stayed)
}

// fileStamp tells whether a file changed: modification time and size of
// each (a rename over it or a symlink swap, as Kubernetes does for
// secrets, changes them too).
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func stampOf(certFile, keyFile string) (fileStamp, error) {
	c, err := os.Stat(certFile)
	if err != nil {
		return fileStamp{}, err
	}
	k, err := os.Stat(keyFile)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{c.ModTime(), k.ModTime(), c.Size(), k.Size()}, nil
}

// newCertStore loads the tls block's pair; an error stops the start.
func newCertStore(t *config.TLS, log *logrus.Entry) (*certStore, error) {
	c := &certStore{certFile: t.CertFile, keyFile: t.KeyFile, log: log}
	st, _ := stampOf(t.CertFile, t.KeyFile)
	pair, err := config.LoadKeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	c.cur.Store(pair)
	c.tried = st
	c.config = &tls.Config{
		MinVersion:     t.MinVersion,
		GetCertificate: c.getCertificate,
		// HTTP/1.1 only: WebSocket's upgrade is an HTTP/1.1 request, and
		// net/http never sees these connections as TLS ones (see
		// upgradeListener), so it could not speak h2 on them anyway.
		NextProtos: []string{"http/1.1"},
	}
	log.WithFields(certFields(pair)).Info("tls: certificate loaded")
	return c, nil
}

func (c *certStore) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

func certFields(pair *tls.Certificate) logrus.Fields {
	l := pair.Leaf
	return logrus.Fields{"serial": l.SerialNumber.String(), "subject": l.Subject.String(),
		"not_after": l.NotAfter.UTC().Format(time.RFC3339)}
}

// check loads the pair when the files changed since the last attempt
// (always, with force: a reload, SIGHUP among them); it reports whether
// the certificate was replaced.
func (c *certStore) check(force bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := stampOf(c.certFile, c.keyFile)
	if err != nil && !force {
		// Gone for a moment (being replaced) or for good: keep serving the
		// old one; the load below says why once the stamp settles.
		st = fileStamp{}
	}
	if st == c.tried && !force {
		return false
	}
	if !force {
		time.Sleep(certSettle)
		if again, _ := stampOf(c.certFile, c.keyFile); again != st {
			return false // still being written: the next poll sees it
		}
	}
	c.tried = st
	pair, err := config.LoadKeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.reloadErrors.Add(1)
		c.log.WithError(err).WithFields(certFields(c.cur.Load())).
			Error("tls: the changed certificate files do not load; the previous certificate stays in service")
		return false
	}
	c.cur.Store(pair)
	c.reloads.Add(1)
	c.log.WithFields(certFields(pair)).Info("tls: certificate replaced; new handshakes use it")
	return true
}

// watch polls the files until ctx ends. A reload (Server.Reload: SIGHUP,
// the API) loads them whatever they look like.
func (c *certStore) watch(ctx context.Context) {
	tick := time.NewTicker(certPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			c.check(false)
		}
	}
}

// startTLS builds the certificate store of the tls block and watches its
// files until ctx ends; without a tls block it does nothing.
func (s *Server) startTLS(ctx context.Context) error {
	t := s.cfg.Server.TLS
	if t == nil {
		return nil
	}
	c, err := newCertStore(t, s.log.WithField("component", "tls"))
	if err != nil {
		r := t.DeclRange
		return fmt.Errorf("%s:%d:%d: %w", r.Filename, r.Start.Line, r.Start.Column, err)
	}
	s.certs = c
	go c.watch(ctx)
	return nil
}

// tlsListener is l speaking TLS when the instance has a certificate. The
// handshake itself runs in the upgradeListener's classify (main listener)
// or in net/http (metrics listener), never in the accept loop.
func (s *Server) tlsListener(l net.Listener) net.Listener {
	if s.certs == nil {
		return l
	}
	return tls.NewListener(l, s.certs.config)
}

// metricsListener is l as the metrics listener serves it: TLS too unless
// the tls block says metrics = false.
func (s *Server) metricsListener(l net.Listener) net.Listener {
	if t := s.cfg.Server.TLS; t == nil || !t.Metrics {
		return l
	}
	return s.tlsListener(l)
}

// handshakeTLS completes a TLS connection's handshake within timeout,
// before its first request is read (nil for a plain connection). A client
// that spoke plain HTTP gets a 400 saying so, as net/http answers it, not
// a silent close.
func handshakeTLS(c net.Conn, timeout time.Duration) error {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := tc.HandshakeContext(ctx)
	var rec tls.RecordHeaderError
	if errors.As(err, &rec) {
		if rec.Conn != nil && looksLikeHTTP(rec.RecordHeader) {
			_ = rec.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(rec.Conn, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"+
				"This port speaks TLS: use https:// or wss://.\n")
		}
		return errors.New("tls handshake: not a TLS client (plain HTTP to a TLS port?)")
	}
	if err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	return nil
}

// looksLikeHTTP: the first five bytes of a plain HTTP request.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH":
		return true
	}
	return false
}

// tlsState is the connection state of a TLS connection, nil for a plain
// one, for http.Request.TLS (net/http does not fill it in: it gets the
// connections as replayConns).
func tlsState(c net.Conn) *tls.ConnectionState {
	if rc, ok := c.(*replayConn); ok {
		c = rc.Conn
	}
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	return &st
}

type tlsStateKey struct{}

// withTLSState makes net/http's requests on TLS connections carry their
// Request.TLS (the handshake's `secure`, and any handler that asks).
func (s *Server) withTLSState(hs *http.Server) {
	if s.certs == nil {
		return
	}
	hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if st := tlsState(c); st != nil {
			return context.WithValue(ctx, tlsStateKey{}, st)
		}
		return ctx
	}
	next := hs.Handler
	hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok && r.TLS == nil {
			r.TLS = st
		}
		next.ServeHTTP(w, r)
	})
}

// tlsMetrics adds the TLS series to a snapshot (none without TLS).
func (s *Server) tlsMetrics(gauge, counter func(name, help string, v float64, kv ...string)) {
	c := s.certs
	if c == nil {
		return
	}
	gauge("tls_certificate_expiry_timestamp_seconds", "When the certificate in service expires (Unix time).",
		float64(c.cur.Load().Leaf.NotAfter.Unix()))
	counter("tls_certificate_reloads_total", "Certificate file changes, by result (error: the files did not load and the previous certificate stayed).",
		float64(c.reloads.Load()), "result", "ok")
	counter("tls_certificate_reloads_total", "Certificate file changes, by result (error: the files did not load and the previous certificate stayed).",
		float64(c.reloadErrors.Load()), "result", "error")
	counter("tls_handshake_errors_total", "TLS handshakes on the main listener that failed (untrusted certificate, old TLS version, plain HTTP to the TLS port).",
		float64(s.accept.tlsErrors.Load()))
}
