package main

import (
	"crypto/x509"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestAlgorithmConfusion: an HS token "signed" with the public key's bytes
// as HMAC secret must never verify against that public key, whatever
// algorithms says; nor may an EC key verify another curve's algorithm.
func TestAlgorithmConfusion(t *testing.T) {
	k := getKeys(t)
	rsaPEM := pubPEM(t, &k.rsa.PublicKey)
	rsaDER, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	edPEM := pubPEM(t, k.ed.Public())
	ecPEM := pubPEM(t, &k.p256.PublicKey)

	const algMsg, algReason = "invalid token: algorithm not allowed", "algorithm"
	tests := []struct {
		name string
		cfg  map[string]any
		tok  string
	}{
		{"HS256 with RSA PEM as secret", map[string]any{"public_key_file": writeFile(t, "rsa.pem", rsaPEM)},
			mint(t, jwt.SigningMethodHS256, rsaPEM, "", validClaims())},
		{"HS256 with RSA PEM as secret, RS256 configured", map[string]any{"public_key_file": writeFile(t, "rsa.pem", rsaPEM), "algorithms": []string{"RS256"}},
			mint(t, jwt.SigningMethodHS256, rsaPEM, "", validClaims())},
		{"HS512 with RSA DER as secret", map[string]any{"public_key_file": writeFile(t, "rsa.pem", rsaPEM)},
			mint(t, jwt.SigningMethodHS512, rsaDER, "", validClaims())},
		{"HS256 with Ed25519 PEM as secret", map[string]any{"public_key_file": writeFile(t, "ed.pem", edPEM)},
			mint(t, jwt.SigningMethodHS256, edPEM, "", validClaims())},
		{"HS256 with EC PEM as secret", map[string]any{"public_key_file": writeFile(t, "ec.pem", ecPEM)},
			mint(t, jwt.SigningMethodHS256, ecPEM, "", validClaims())},
		{"ES384 token against a P-256 key", map[string]any{"public_key_file": writeFile(t, "ec.pem", ecPEM)},
			mint(t, jwt.SigningMethodES384, k.p384, "", validClaims())},
		{"RS256 token against an Ed25519 key", map[string]any{"public_key_file": writeFile(t, "ed.pem", edPEM)},
			mint(t, jwt.SigningMethodRS256, k.rsa, "", validClaims())},
		{"RS256 token against a secret", map[string]any{"secret": testSecret},
			mint(t, jwt.SigningMethodRS256, k.rsa, "", validClaims())},
		{"HS256 via JWKS with the JWK's n as secret", map[string]any{"jwks_file": writeFile(t, "jwks.json", jwksJSON(t, jwkOf(t, "k1", "", &k.rsa.PublicKey)))},
			mint(t, jwt.SigningMethodHS256, []byte(jwkOf(t, "k1", "", &k.rsa.PublicKey)["n"]), "k1", validClaims())},
		{"none with a public key", map[string]any{"public_key_file": writeFile(t, "rsa.pem", rsaPEM)},
			mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", validClaims())},
		{"none with a secret", map[string]any{"secret": testSecret},
			mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", validClaims())},
		{"none via JWKS", map[string]any{"jwks_file": writeFile(t, "jwks.json", jwksJSON(t, jwkOf(t, "k1", "", &k.rsa.PublicKey)))},
			mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", validClaims())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := configured(t, tc.cfg)
			wantRefusal(t, decide(t, p, authReq(tc.tok)), algMsg, algReason)
		})
	}

	// Defence in depth: even with the parser's allow-list bypassed, the
	// key function never hands an RSA key to an HS verification.
	t.Run("key function", func(t *testing.T) {
		p := configured(t, map[string]any{"public_key_file": writeFile(t, "rsa.pem", rsaPEM)})
		s := p.state.Load()
		s.algs = append(s.algs, "HS256") // a misconfiguration the schema prevents
		if _, err := s.key(&jwt.Token{Method: jwt.SigningMethodHS256, Header: map[string]any{"alg": "HS256"}}); err == nil {
			t.Fatal("key function returned a key for HS256 with an RSA public key")
		}
	})
}
