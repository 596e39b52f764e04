package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
)

// keyKind is the family of a verification key; an algorithm only ever
// verifies against a key of its own family, so an HS token can never be
// checked with a public key's bytes as HMAC secret.
type keyKind int

const (
	kindHMAC keyKind = iota + 1
	kindRSA
	kindEC
	kindEd25519
)

// algKinds maps every accepted algorithm to the key family it needs.
var algKinds = map[string]keyKind{
	"HS256": kindHMAC, "HS384": kindHMAC, "HS512": kindHMAC,
	"RS256": kindRSA, "RS384": kindRSA, "RS512": kindRSA,
	"PS256": kindRSA, "PS384": kindRSA, "PS512": kindRSA,
	"ES256": kindEC, "ES384": kindEC, "ES512": kindEC,
	"EdDSA": kindEd25519,
}

var (
	allAlgorithms = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
		"PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	hmacAlgorithms       = []string{"HS256", "HS384", "HS512"}
	rsaAlgorithms        = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	asymmetricAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

// verifyKey is one verification key and what it may verify.
type verifyKey struct {
	kind  keyKind
	key   any    // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	ecAlg string // for EC keys: the one algorithm of the curve
	alg   string // a JWK's "alg" member: when set, the only algorithm accepted
}

// accepts reports whether a token signed with alg may be verified with k.
func (k *verifyKey) accepts(alg string) bool {
	if k.alg != "" && alg != k.alg {
		return false
	}
	kind, ok := algKinds[alg]
	if !ok || kind != k.kind {
		return false
	}
	return k.kind != kindEC || alg == k.ecAlg
}

func (k *verifyKey) defaultAlgorithms() []string {
	switch k.kind {
	case kindHMAC:
		return hmacAlgorithms
	case kindRSA:
		return rsaAlgorithms
	case kindEC:
		return []string{k.ecAlg}
	default:
		return []string{"EdDSA"}
	}
}

func (k *verifyKey) describe() string {
	switch k.kind {
	case kindHMAC:
		return "a secret"
	case kindRSA:
		return "an RSA public key"
	case kindEC:
		return "an EC public key (" + k.ecAlg + " only)"
	default:
		return "an Ed25519 public key"
	}
}

// publicKey wraps a parsed public key, checking its type and curve.
func publicKey(pub any) (*verifyKey, error) {
	switch pk := pub.(type) {
	case *rsa.PublicKey:
		return &verifyKey{kind: kindRSA, key: pk}, nil
	case *ecdsa.PublicKey:
		alg, err := curveAlg(pk.Curve)
		if err != nil {
			return nil, err
		}
		return &verifyKey{kind: kindEC, key: pk, ecAlg: alg}, nil
	case ed25519.PublicKey:
		return &verifyKey{kind: kindEd25519, key: pk}, nil
	default:
		return nil, fmt.Errorf("unsupported public key type %T (RSA, ECDSA or Ed25519 expected)", pub)
	}
}

func curveAlg(c elliptic.Curve) (string, error) {
	switch c {
	case elliptic.P256():
		return "ES256", nil
	case elliptic.P384():
		return "ES384", nil
	case elliptic.P521():
		return "ES512", nil
	}
	return "", fmt.Errorf("unsupported EC curve %s (P-256, P-384 or P-521 expected)", c.Params().Name)
}

// loadPEMFile reads the first public key or certificate of a PEM file.
func loadPEMFile(path string) (*verifyKey, error) {
	if path == "" {
		return nil, errors.New("path is empty")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := parsePEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func parsePEM(data []byte) (*verifyKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM public key or certificate found")
		}
		switch block.Type {
		case "PUBLIC KEY":
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("invalid PUBLIC KEY: %w", err)
			}
			return publicKey(pub)
		case "RSA PUBLIC KEY":
			pub, err := x509.ParsePKCS1PublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("invalid RSA PUBLIC KEY: %w", err)
			}
			return publicKey(pub)
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("invalid CERTIFICATE: %w", err)
			}
			return publicKey(cert.PublicKey)
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("found a %s; give the public key (PUBLIC KEY) or a certificate", block.Type)
			}
			// Anything else (parameters, ...) is skipped.
		}
	}
}

// jwk is one entry of a JWKS file (RFC 7517, RFC 7518 section 6, RFC 8037).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
}

var b64 = base64.RawURLEncoding

// b64field decodes a base64url member, tolerating padding.
func b64field(name, v string) ([]byte, error) {
	if v == "" {
		return nil, fmt.Errorf("missing %q", name)
	}
	b, err := b64.DecodeString(strings.TrimRight(v, "="))
	if err != nil {
		return nil, fmt.Errorf("invalid base64url in %q", name)
	}
	return b, nil
}

// parseJWK turns a JWK into a verification key. skip is true (and err
// describes why) for keys this plugin ignores rather than refuses: keys
// for encryption and key types it does not verify with.
func parseJWK(j *jwk) (k *verifyKey, skip bool, err error) {
	if j.Use != "" && j.Use != "sig" {
		return nil, true, fmt.Errorf("use %q is not \"sig\"", j.Use)
	}
	if j.D != "" {
		return nil, false, errors.New("holds a private key (\"d\"); publish public keys only")
	}
	if j.Alg != "" {
		if strings.EqualFold(j.Alg, "none") {
			return nil, false, errors.New("alg \"none\" is never accepted")
		}
		if _, ok := algKinds[j.Alg]; !ok {
			return nil, true, fmt.Errorf("unsupported alg %q", j.Alg)
		}
	}
	switch j.Kty {
	case "RSA":
		n, err := b64field("n", j.N)
		if err != nil {
			return nil, false, err
		}
		e, err := b64field("e", j.E)
		if err != nil {
			return nil, false, err
		}
		if len(e) == 0 || len(e) > 4 {
			return nil, false, errors.New("invalid RSA exponent")
		}
		exp := new(big.Int).SetBytes(e)
		if !exp.IsInt64() || exp.Int64() < 3 || exp.Int64() > 1<<31-1 || exp.Bit(0) == 0 {
			return nil, false, errors.New("invalid RSA exponent")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}
		if pub.N.BitLen() < 1024 {
			return nil, false, fmt.Errorf("RSA modulus of %d bits is too small", pub.N.BitLen())
		}
		k = &verifyKey{kind: kindRSA, key: pub}
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, false, fmt.Errorf("unsupported EC curve %q", j.Crv)
		}
		x, err := b64field("x", j.X)
		if err != nil {
			return nil, false, err
		}
		y, err := b64field("y", j.Y)
		if err != nil {
			return nil, false, err
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) > size || len(y) > size {
			return nil, false, errors.New("EC coordinates too long for the curve")
		}
		point := make([]byte, 1+2*size)
		point[0] = 4
		copy(point[1+size-len(x):1+size], x)
		copy(point[1+2*size-len(y):], y)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, false, fmt.Errorf("invalid EC public key: %w", err)
		}
		k, err = publicKey(pub)
		if err != nil {
			return nil, false, err
		}
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, true, fmt.Errorf("unsupported OKP curve %q", j.Crv)
		}
		x, err := b64field("x", j.X)
		if err != nil {
			return nil, false, err
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, false, errors.New("invalid Ed25519 public key size")
		}
		k = &verifyKey{kind: kindEd25519, key: ed25519.PublicKey(x)}
	case "oct":
		return nil, true, errors.New("symmetric (oct) keys are not used from jwks_file; use secret")
	case "":
		return nil, false, errors.New("missing \"kty\"")
	default:
		return nil, true, fmt.Errorf("unsupported kty %q", j.Kty)
	}
	if j.Alg != "" {
		k.alg = j.Alg
		if !k.accepts(j.Alg) {
			return nil, false, fmt.Errorf("alg %q does not fit a %s key", j.Alg, j.Kty)
		}
	}
	return k, false, nil
}
