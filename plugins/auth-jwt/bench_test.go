package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// benchClaims is a typical chat token: user, rooms, a couple of extras.
func benchClaims() jwt.MapClaims {
	return with(validClaims(), "rooms", []string{"lobby", "team-7"}, "name", "Ada", "role", "member")
}

func benchAuthenticate(b *testing.B, p authenticator, tok string) {
	b.Helper()
	req := authReq(tok)
	ctx := context.Background()
	if d, err := p.Authenticate(ctx, req); err != nil || !d.Allow {
		b.Fatalf("decision %+v, %v", d, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.Authenticate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func benchConfig(extra map[string]any) map[string]any {
	cfg := map[string]any{"audience": "chat", "issuer": "https://id.example", "rooms_claim": "rooms", "data_claims": []string{"sub", "name", "role"}}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

func BenchmarkAuthenticateHS256(b *testing.B) {
	p := configured(b, benchConfig(map[string]any{"secret": testSecret}))
	benchAuthenticate(b, p, mint(b, jwt.SigningMethodHS256, []byte(testSecret), "", benchClaims()))
}

func BenchmarkAuthenticateES256(b *testing.B) {
	k := getKeys(b)
	p := configured(b, benchConfig(map[string]any{"public_key_file": writeFile(b, "ec.pem", pubPEM(b, &k.p256.PublicKey))}))
	benchAuthenticate(b, p, mint(b, jwt.SigningMethodES256, k.p256, "", benchClaims()))
}

func BenchmarkAuthenticateES256JWKS(b *testing.B) {
	k := getKeys(b)
	p := configured(b, benchConfig(map[string]any{"jwks_file": writeFile(b, "jwks.json", jwksJSON(b, jwkOf(b, "e", "", &k.p256.PublicKey), jwkOf(b, "r", "", &k.rsa.PublicKey)))}))
	benchAuthenticate(b, p, mint(b, jwt.SigningMethodES256, k.p256, "e", benchClaims()))
}

func BenchmarkAuthenticateRefusedNoToken(b *testing.B) {
	p := configured(b, benchConfig(map[string]any{"secret": testSecret}))
	req := authReq("")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Authenticate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateHS256InProcess is one Authenticate through the gRPC
// boundary (in-memory connection, protobuf and shims), with the plugin on
// the real clock.
func BenchmarkAuthenticateHS256InProcess(b *testing.B) {
	p := plugintest.InProcess(b, newPlugin())
	raw, _ := json.Marshal(benchConfig(map[string]any{"secret": testSecret}))
	if err := p.Configure(context.Background(), sdk.Config(raw)); err != nil {
		b.Fatal(err)
	}
	benchAuthenticate(b, p.(sdk.Authenticator), mint(b, jwt.SigningMethodHS256, []byte(testSecret), "", with(benchClaims(), "exp", time.Now().Add(time.Hour).Unix())))
}

func BenchmarkAuthenticateES256InProcess(b *testing.B) {
	k := getKeys(b)
	p := plugintest.InProcess(b, newPlugin())
	raw, _ := json.Marshal(benchConfig(map[string]any{"public_key_file": writeFile(b, "ec.pem", pubPEM(b, &k.p256.PublicKey))}))
	if err := p.Configure(context.Background(), sdk.Config(raw)); err != nil {
		b.Fatal(err)
	}
	benchAuthenticate(b, p.(sdk.Authenticator), mint(b, jwt.SigningMethodES256, k.p256, "", with(benchClaims(), "exp", time.Now().Add(time.Hour).Unix())))
}
