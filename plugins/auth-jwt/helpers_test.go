package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

// testNow is the fixed clock of the direct tests.
var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// testKeys are generated once per test binary (RSA generation is slow
// under the race detector).
type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	p256      *ecdsa.PrivateKey
	p384      *ecdsa.PrivateKey
	p521      *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
	ed2       ed25519.PrivateKey
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func getKeys(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() {
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		var err error
		keys.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		keys.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		keys.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		keys.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		keys.p521, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		must(err)
		_, keys.ed, err = ed25519.GenerateKey(rand.Reader)
		must(err)
		_, keys.ed2, err = ed25519.GenerateKey(rand.Reader)
		must(err)
	})
	return &keys
}

// pubPEM encodes a public key as a PKIX "PUBLIC KEY" PEM block.
func pubPEM(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// certPEM is a self-signed certificate for priv.
func certPEM(t testing.TB, priv crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "auth-jwt test"},
		NotBefore:    testNow.Add(-time.Hour),
		NotAfter:     testNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// jwkOf encodes a public key as a JWK with the given kid (and alg, if set).
func jwkOf(t testing.TB, kid, alg string, pub crypto.PublicKey) map[string]string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	m := map[string]string{"kid": kid, "use": "sig"}
	if alg != "" {
		m["alg"] = alg
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		m["kty"] = "RSA"
		m["n"] = enc(k.N.Bytes())
		m["e"] = enc(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, err := k.Bytes() // 0x04 || X || Y
		if err != nil {
			t.Fatal(err)
		}
		size := (len(raw) - 1) / 2
		m["kty"] = "EC"
		m["crv"] = k.Curve.Params().Name
		m["x"] = enc(raw[1 : 1+size])
		m["y"] = enc(raw[1+size:])
	case ed25519.PublicKey:
		m["kty"] = "OKP"
		m["crv"] = "Ed25519"
		m["x"] = enc(k)
	default:
		t.Fatalf("jwkOf: %T", pub)
	}
	return m
}

func jwksJSON(t testing.TB, jwks ...map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": jwks})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mint signs claims; kid is set when not empty.
func mint(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validClaims are claims that pass with issuer "https://id.example" and
// audience "chat" at testNow.
func validClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub": "user-1",
		"iss": "https://id.example",
		"aud": "chat",
		"exp": testNow.Add(time.Hour).Unix(),
		"iat": testNow.Add(-time.Minute).Unix(),
	}
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// configured returns a plugin configured with cfg and the fixed clock.
func configured(t testing.TB, cfg map[string]any) *jwtPlugin {
	t.Helper()
	p := newPlugin()
	p.now = func() time.Time { return testNow }
	p.logw = &testkit.Buffer{}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Configure(context.Background(), sdk.Config(raw)); err != nil {
		t.Fatalf("Configure(%s): %v", raw, err)
	}
	return p
}

// authReq carries tok in the CONNECT payload.
func authReq(tok string) *sdk.AuthRequest {
	b, _ := json.Marshal(map[string]string{"token": tok})
	return &sdk.AuthRequest{Namespace: "/", Auth: b, Headers: map[string]string{}, Query: map[string]string{}}
}

// authenticator is what the direct and boundary tests both call.
type authenticator interface {
	Authenticate(ctx context.Context, req *sdk.AuthRequest) (*sdk.AuthDecision, error)
}

func decide(t testing.TB, p authenticator, req *sdk.AuthRequest) *sdk.AuthDecision {
	t.Helper()
	d, err := p.Authenticate(context.Background(), req)
	if err != nil {
		t.Fatalf("Authenticate: unexpected Go error %v", err)
	}
	if d == nil {
		t.Fatal("Authenticate: nil decision")
	}
	return d
}

// wantRefusal checks a refusal's message and {"reason": reason}.
func wantRefusal(t testing.TB, d *sdk.AuthDecision, message, reason string) {
	t.Helper()
	if d.Allow {
		t.Fatalf("allowed (user %q), want refusal %q", d.UserID, message)
	}
	if d.Message != message {
		t.Errorf("message = %q, want %q", d.Message, message)
	}
	want := `{"reason":"` + reason + `"}`
	if string(d.ErrorData) != want {
		t.Errorf("error data = %s, want %s", d.ErrorData, want)
	}
}

func wantAllow(t testing.TB, d *sdk.AuthDecision, user string) {
	t.Helper()
	if !d.Allow {
		t.Fatalf("refused: %q %s, want allow", d.Message, d.ErrorData)
	}
	if d.UserID != user {
		t.Errorf("user = %q, want %q", d.UserID, user)
	}
}

// otherKeyLike returns a different private key of the same kind and curve.
func otherKeyLike(t testing.TB, key any) any {
	t.Helper()
	k := getKeys(t)
	switch pk := key.(type) {
	case *rsa.PrivateKey:
		if pk == k.rsa {
			return k.rsa2
		}
		return k.rsa
	case *ecdsa.PrivateKey:
		other, err := ecdsa.GenerateKey(pk.Curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return other
	case ed25519.PrivateKey:
		if bytes.Equal(pk, k.ed) {
			return k.ed2
		}
		return k.ed
	}
	t.Fatalf("otherKeyLike: %T", key)
	return nil
}
