package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// Across the gRPC boundary the plugin runs on the real clock.
func liveClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub": "user-1", "iss": "https://id.example", "aud": "chat",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "rooms": []string{"lobby", "team-7"}, "role": "member",
	}
}

// buildPlugin builds the plugin binary once per test process.
func buildPlugin(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and launches the plugin binary")
	}
	return plugintest.Build(t, ".")
}

type boundary struct {
	name   string
	launch func(t *testing.T) sdk.Plugin
}

func boundaries(t *testing.T) []boundary {
	return []boundary{
		{"in-process", func(t *testing.T) sdk.Plugin { return plugintest.InProcess(t, newPlugin()) }},
		{"subprocess", func(t *testing.T) sdk.Plugin {
			p, _ := plugintest.Subprocess(t, buildPlugin(t), sdk.KindAuth)
			return p
		}},
	}
}

func configure(t *testing.T, p sdk.Plugin, cfg map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(cfg)
	if err := p.Configure(context.Background(), sdk.Config(raw)); err != nil {
		t.Fatalf("Configure(%s): %v", raw, err)
	}
}

func TestBoundary(t *testing.T) {
	k := getKeys(t)
	secretCfg := map[string]any{"secret": testSecret, "issuer": "https://id.example", "audience": "chat",
		"rooms_claim": "rooms", "data_claims": []string{"sub", "role"}, "token_sources": []string{"auth", "header", "query"}}
	jwksPath := writeFile(t, "jwks.json", jwksJSON(t, jwkOf(t, "ec", "", &k.p256.PublicKey), jwkOf(t, "ed", "", k.ed.Public())))
	hs := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodHS256, []byte(testSecret), "", c) }
	valid := hs(liveClaims())

	for _, b := range boundaries(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Run("contract", func(t *testing.T) {
				raw, _ := json.Marshal(secretCfg)
				plugintest.CheckContract(t, b.launch(t), plugintest.Options{Config: sdk.Config(raw)})
			})

			t.Run("secret", func(t *testing.T) {
				p := b.launch(t)
				if info := p.Info(); info.Name != "jwt" || info.Version != Version || info.Kind != sdk.KindAuth {
					t.Errorf("Info = %+v", info)
				}
				if n := len(p.ConfigSchema().Attributes); n != 13 {
					t.Errorf("%d attributes across the boundary, want 13", n)
				}
				configure(t, p, secretCfg)
				a := p.(sdk.Authenticator)
				plugintest.CheckAuth(t, a,
					plugintest.AuthCase{Name: "auth token", Request: *authReq(valid), Allow: true, UserID: "user-1"},
					plugintest.AuthCase{Name: "header", Request: sdk.AuthRequest{Namespace: "/", Auth: json.RawMessage(`{}`), Headers: map[string]string{"authorization": "Bearer " + valid}}, Allow: true, UserID: "user-1"},
					plugintest.AuthCase{Name: "query", Request: sdk.AuthRequest{Namespace: "/", Auth: json.RawMessage(`{}`), Query: map[string]string{"token": valid}}, Allow: true, UserID: "user-1"},
					plugintest.AuthCase{Name: "no token", Request: sdk.AuthRequest{Namespace: "/", Auth: json.RawMessage(`{}`)}},
					plugintest.AuthCase{Name: "expired", Request: *authReq(hs(with(liveClaims(), "exp", time.Now().Add(-time.Hour).Unix())))},
				)

				d := decide(t, a, authReq(valid))
				wantAllow(t, d, "user-1")
				if !slices.Equal(d.Rooms, []string{"lobby", "team-7"}) || string(d.Data) != `{"sub":"user-1","role":"member"}` {
					t.Errorf("rooms %q data %s", d.Rooms, d.Data)
				}
				for _, c := range []struct{ tok, message, reason string }{
					{"", "authentication required: no token", "no_token"},
					{"x.y", "invalid token: malformed", "malformed"},
					{mint(t, jwt.SigningMethodHS256, []byte("some other secret of decent length"), "", liveClaims()), "invalid token: signature is invalid", "bad_signature"},
					{hs(with(liveClaims(), "exp", time.Now().Add(-time.Hour).Unix())), "invalid token: token has expired", "expired"},
					{hs(with(liveClaims(), "nbf", time.Now().Add(time.Hour).Unix())), "invalid token: token is not valid yet", "not_yet_valid"},
					{hs(with(liveClaims(), "iss", "other")), "invalid token: wrong issuer", "wrong_issuer"},
					{hs(with(liveClaims(), "aud", "other")), "invalid token: wrong audience", "wrong_audience"},
					{hs(with(liveClaims(), "sub", nil)), "invalid token: no sub claim", "no_user"},
					{mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", liveClaims()), "invalid token: algorithm not allowed", "algorithm"},
				} {
					wantRefusal(t, decide(t, a, authReq(c.tok)), c.message, c.reason)
				}
			})

			t.Run("jwks", func(t *testing.T) {
				p := b.launch(t)
				configure(t, p, map[string]any{"jwks_file": jwksPath, "audience": "chat"})
				a := p.(sdk.Authenticator)
				wantAllow(t, decide(t, a, authReq(mint(t, jwt.SigningMethodES256, k.p256, "ec", liveClaims()))), "user-1")
				wantAllow(t, decide(t, a, authReq(mint(t, jwt.SigningMethodEdDSA, k.ed, "ed", liveClaims()))), "user-1")
				wantRefusal(t, decide(t, a, authReq(mint(t, jwt.SigningMethodEdDSA, k.ed, "nope", liveClaims()))), "invalid token: unknown key", "unknown_key")
				rsaPEM := pubPEM(t, &k.rsa.PublicKey)
				wantRefusal(t, decide(t, a, authReq(mint(t, jwt.SigningMethodHS256, rsaPEM, "ec", liveClaims()))), "invalid token: algorithm not allowed", "algorithm")
			})

			t.Run("configure error", func(t *testing.T) {
				p := b.launch(t)
				err := p.Configure(context.Background(), sdk.Config(`{"secret":"s","jwks_file":"`+jwksPath+`"}`))
				if err == nil || !strings.Contains(err.Error(), "only one of secret, public_key_file and jwks_file may be set") {
					t.Fatalf("Configure error = %v", err)
				}
			})
		})
	}
}
