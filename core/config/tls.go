package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// TLS is the server block's tls block: the listeners speak HTTPS (and
// WebSocket over TLS) with this certificate; nil = plain HTTP.
type TLS struct {
	CertFile   string // PEM: the leaf first, then intermediates; absolute (relative ones mean the config's folder)
	KeyFile    string // PEM private key of the leaf
	MinVersion uint16 // tls.VersionTLS12 (default) or tls.VersionTLS13
	// Metrics: the metrics plugin block's own listener (listen) is TLS too,
	// with the same certificate; default true.
	Metrics bool

	DeclRange hcl.Range
}

var tlsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "cert_file", Required: true}, {Name: "key_file", Required: true},
		{Name: "min_version"}, {Name: "metrics"},
	},
}

// tlsVersions are the accepted min_version values. TLS 1.0 and 1.1 are
// deprecated (RFC 8996) and browsers no longer offer them.
var tlsVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// tls decodes the tls block and loads its key pair, so that `validate`
// and startup report a missing, unreadable or mismatched file at the
// attribute that names it.
func (d *decoder) tls(b *hcl.Block) *TLS {
	if b == nil {
		return nil
	}
	t := &TLS{MinVersion: tls.VersionTLS12, Metrics: true, DeclRange: b.DefRange}
	a := d.content(b.Body, tlsSchema).Attributes
	d.boolean(a["metrics"], &t.Metrics)
	if attr := a["min_version"]; attr != nil {
		var v string
		if d.str(attr, &v) {
			if mv, ok := tlsVersions[strings.TrimSpace(v)]; ok {
				t.MinVersion = mv
			} else {
				d.attrError(attr, "Invalid min_version",
					`%q is not a TLS version this server accepts; use "1.2" or "1.3" (TLS 1.0 and 1.1 are deprecated, RFC 8996).`, v)
			}
		}
	}
	cert, key := a["cert_file"], a["key_file"]
	okCert := cert != nil && d.str(cert, &t.CertFile) && d.nonEmptyPath(cert, &t.CertFile)
	okKey := key != nil && d.str(key, &t.KeyFile) && d.nonEmptyPath(key, &t.KeyFile)
	if !okCert || !okKey {
		return t
	}
	pair, err := LoadKeyPair(t.CertFile, t.KeyFile)
	var kerr *KeyPairError
	switch {
	case errors.As(err, &kerr) && kerr.Attr == "cert_file":
		d.attrError(cert, kerr.Summary, "%s.", kerr.Err)
	case errors.As(err, &kerr):
		d.attrError(key, kerr.Summary, "%s.", kerr.Err)
	case err != nil:
		d.errorf(b.DefRange.Ptr(), nil, "Invalid TLS key pair", "%s.", err)
	case time.Now().After(pair.Leaf.NotAfter):
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Expired certificate",
			Detail: fmt.Sprintf("The certificate in %s expired at %s; clients will refuse it. Replace the files: the server picks new ones up while running.",
				t.CertFile, pair.Leaf.NotAfter.UTC().Format(time.RFC3339)),
			Subject: cert.Expr.Range().Ptr(),
			Context: cert.Range.Ptr(),
		})
	}
	return t
}

// nonEmptyPath refuses "" and makes a relative path the config folder's.
func (d *decoder) nonEmptyPath(attr *hcl.Attribute, p *string) bool {
	if strings.TrimSpace(*p) == "" {
		d.attrError(attr, "Empty path", "%s must name a PEM file.", attr.Name)
		return false
	}
	if !filepath.IsAbs(*p) {
		*p = filepath.Join(configDir(attr.Range.Filename), *p)
	}
	return true
}

// KeyPairError says which file of a certificate and key pair is wrong.
type KeyPairError struct {
	Attr    string // "cert_file" or "key_file"
	Summary string
	Err     error
}

func (e *KeyPairError) Error() string { return e.Attr + ": " + e.Err.Error() }
func (e *KeyPairError) Unwrap() error { return e.Err }

// LoadKeyPair reads a PEM certificate chain and its private key; the
// returned certificate has its Leaf parsed. Errors are *KeyPairError,
// naming the file at fault (a key that does not match is the key's).
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, &KeyPairError{"cert_file", "Cannot read certificate", err}
	}
	if err := checkCertPEM(certFile, certPEM); err != nil {
		return nil, &KeyPairError{"cert_file", "Invalid certificate", err}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, &KeyPairError{"key_file", "Cannot read private key", err}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return nil, &KeyPairError{"key_file", "Key does not match certificate",
				fmt.Errorf("the private key in %s is not the key of the certificate in %s (%w)", keyFile, certFile, err)}
		}
		return nil, &KeyPairError{"key_file", "Invalid private key", fmt.Errorf("%s: %w", keyFile, err)}
	}
	if pair.Leaf == nil { // filled by X509KeyPair since Go 1.23; kept for clarity
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, &KeyPairError{"cert_file", "Invalid certificate", err}
		}
	}
	return &pair, nil
}

// checkCertPEM: at least one CERTIFICATE block, every one parses.
func checkCertPEM(file string, b []byte) error {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		n++
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("%s: certificate %d: %w", file, n, err)
		}
	}
	if n == 0 {
		return fmt.Errorf("%s holds no PEM \"CERTIFICATE\" block", file)
	}
	return nil
}
