package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
)

// trustCA makes every client trust the PEM certificates in file (an
// https:// --url of a server with a test CA); "" changes nothing. Called
// once, before any client dials.
func trustCA(file string) error {
	if file == "" {
		return nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("--tls-ca: no PEM certificate in %s", file)
	}
	// No session cache: every connection makes a full handshake, as a new
	// visitor's does (the worst case for the server).
	conf := &tls.Config{RootCAs: pool}
	wsDialer.TLSClientConfig = conf
	pollHTTP.Transport.(*http.Transport).TLSClientConfig = conf
	return nil
}
