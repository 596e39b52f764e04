package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

func TestJWKSKeys(t *testing.T) {
	k := getKeys(t)
	path := writeFile(t, "jwks.json", jwksJSON(t,
		jwkOf(t, "rsa-1", "RS256", &k.rsa.PublicKey),
		jwkOf(t, "ec-1", "", &k.p256.PublicKey),
		jwkOf(t, "ec-521", "", &k.p521.PublicKey),
		jwkOf(t, "ed-1", "", k.ed.Public()),
		map[string]string{"kty": "RSA", "kid": "enc-1", "use": "enc", "n": "AQAB", "e": "AQAB"},
		map[string]string{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
	))
	p := configured(t, map[string]any{"jwks_file": path})
	tests := []struct {
		name    string
		tok     string
		message string // "" = allowed
		reason  string
	}{
		{"RSA", mint(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", validClaims()), "", ""},
		{"EC", mint(t, jwt.SigningMethodES256, k.p256, "ec-1", validClaims()), "", ""},
		{"EC P-521", mint(t, jwt.SigningMethodES512, k.p521, "ec-521", validClaims()), "", ""},
		{"Ed25519", mint(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", validClaims()), "", ""},
		{"unknown kid", mint(t, jwt.SigningMethodRS256, k.rsa, "rsa-9", validClaims()), "invalid token: unknown key", "unknown_key"},
		{"no kid with several keys", mint(t, jwt.SigningMethodRS256, k.rsa, "", validClaims()), "invalid token: unknown key", "unknown_key"},
		{"skipped enc key", mint(t, jwt.SigningMethodRS256, k.rsa, "enc-1", validClaims()), "invalid token: unknown key", "unknown_key"},
		{"JWK alg pins RS256", mint(t, jwt.SigningMethodPS256, k.rsa, "rsa-1", validClaims()), "invalid token: algorithm not allowed", "algorithm"},
		{"kid of another key kind", mint(t, jwt.SigningMethodES256, k.p256, "ed-1", validClaims()), "invalid token: algorithm not allowed", "algorithm"},
		{"wrong key under a kid", mint(t, jwt.SigningMethodRS256, k.rsa2, "rsa-1", validClaims()), "invalid token: signature is invalid", "bad_signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := decide(t, p, authReq(tc.tok))
			if tc.message == "" {
				wantAllow(t, d, "user-1")
			} else {
				wantRefusal(t, d, tc.message, tc.reason)
			}
		})
	}
	if log := p.logw.(*testkit.Buffer).String(); !strings.Contains(log, `kid "enc-1"`) || !strings.Contains(log, `kid "sym"`) {
		t.Errorf("skipped keys not logged: %q", log)
	}

	t.Run("single key without kid", func(t *testing.T) {
		p := configured(t, map[string]any{"jwks_file": writeFile(t, "one.json", jwksJSON(t, jwkOf(t, "", "", k.ed.Public())))})
		wantAllow(t, decide(t, p, authReq(mint(t, jwt.SigningMethodEdDSA, k.ed, "", validClaims()))), "user-1")
	})
}

// TestJWKSReload rewrites the file: a new key is picked up within about a
// second, a corrupt rewrite is logged and leaves the old keys working.
func TestJWKSReload(t *testing.T) {
	k := getKeys(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	write := func(data []byte) {
		t.Helper()
		// Atomic replace, as deployment tools do.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(jwksJSON(t, jwkOf(t, "old", "", &k.p256.PublicKey)))
	p := configured(t, map[string]any{"jwks_file": path})
	logs := p.logw.(*testkit.Buffer)
	oldTok := mint(t, jwt.SigningMethodES256, k.p256, "old", validClaims())
	newTok := mint(t, jwt.SigningMethodEdDSA, k.ed, "new", validClaims())
	wantAllow(t, decide(t, p, authReq(oldTok)), "user-1")
	wantRefusal(t, decide(t, p, authReq(newTok)), "invalid token: unknown key", "unknown_key")

	// until polls for up to 3 s until Authenticate returns want for tok.
	until := func(tok string, allow bool) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			d := decide(t, p, authReq(tok))
			if d.Allow == allow {
				return time.Since(start)
			}
			if time.Since(start) > 3*time.Second {
				t.Fatalf("after %s: %q %s", time.Since(start), d.Message, d.ErrorData)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	write(jwksJSON(t, jwkOf(t, "old", "", &k.p256.PublicKey), jwkOf(t, "new", "", k.ed.Public())))
	t.Logf("new key picked up after %s", until(newTok, true))
	wantAllow(t, decide(t, p, authReq(oldTok)), "user-1")

	// Corrupt rewrites: the previous keys stay.
	for _, bad := range []string{`{"keys": [`, `{"keys": []}`, `{"keys": [{"kty": "EC", "kid": "x", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}`} {
		write([]byte(bad))
		time.Sleep(1200 * time.Millisecond) // past one check interval
		wantAllow(t, decide(t, p, authReq(newTok)), "user-1")
		wantAllow(t, decide(t, p, authReq(oldTok)), "user-1")
	}
	if n := strings.Count(logs.String(), "keeping the previous keys"); n != 3 {
		t.Errorf("%d failed reloads logged, want 3:\n%s", n, logs)
	}

	// A valid file again is picked up: the old key is dropped.
	write(jwksJSON(t, jwkOf(t, "new", "", k.ed.Public())))
	t.Logf("old key dropped after %s", until(oldTok, false))
	wantRefusal(t, decide(t, p, authReq(oldTok)), "invalid token: unknown key", "unknown_key")
	wantAllow(t, decide(t, p, authReq(newTok)), "user-1")

	// An in-place rewrite (no rename) is seen too.
	if err := os.WriteFile(path, jwksJSON(t, jwkOf(t, "old", "", &k.p256.PublicKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	until(oldTok, true)

	// A deleted file keeps the keys.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	wantAllow(t, decide(t, p, authReq(oldTok)), "user-1")
	if !strings.Contains(logs.String(), "no such file") {
		t.Errorf("deleted file not logged:\n%s", logs)
	}
}

// TestConcurrent exercises Authenticate from many goroutines while the
// JWKS file changes (run with -race).
func TestConcurrent(t *testing.T) {
	k := getKeys(t)
	path := writeFile(t, "jwks.json", jwksJSON(t, jwkOf(t, "a", "", k.ed.Public())))
	p := configured(t, map[string]any{"jwks_file": path, "rooms_claim": "rooms"})
	tok := mint(t, jwt.SigningMethodEdDSA, k.ed, "a", with(validClaims(), "rooms", []string{"r1", "r2"}))
	var wg sync.WaitGroup
	stop := time.Now().Add(1500 * time.Millisecond)
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				d, err := p.Authenticate(context.Background(), authReq(tok))
				if err != nil || !d.Allow || len(d.Rooms) != 2 {
					t.Errorf("decision %+v, %v", d, err)
					return
				}
			}
		})
	}
	for i := range 3 {
		time.Sleep(400 * time.Millisecond)
		data := jwksJSON(t, jwkOf(t, "a", "", k.ed.Public()), jwkOf(t, "b"+string(rune('0'+i)), "", k.ed2.Public()))
		if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

func TestTokenSources(t *testing.T) {
	valid := mint(t, jwt.SigningMethodHS256, []byte(testSecret), "", validClaims())
	bad := mint(t, jwt.SigningMethodHS256, []byte("not the secret, but long enough"), "", validClaims())
	req := func(auth string, headers, query map[string]string) *sdk.AuthRequest {
		if auth == "" {
			auth = "{}"
		}
		return &sdk.AuthRequest{Namespace: "/", Auth: json.RawMessage(auth), Headers: headers, Query: query}
	}
	authJSON := func(v string) string { b, _ := json.Marshal(map[string]string{"token": v}); return string(b) }
	hdr := func(v string) map[string]string { return map[string]string{"authorization": v} }
	q := func(k, v string) map[string]string { return map[string]string{k: v} }

	tests := []struct {
		name    string
		sources []string // nil = default
		param   string
		req     *sdk.AuthRequest
		reason  string // "" = allowed
	}{
		{"auth", nil, "", req(authJSON(valid), nil, nil), ""},
		{"auth with Bearer", nil, "", req(authJSON("Bearer "+valid), nil, nil), ""},
		{"auth with bearer lower case", nil, "", req(authJSON("bearer "+valid), nil, nil), ""},
		{"auth among other fields", nil, "", req(`{"room":"x","token":"`+valid+`","n":1}`, nil, nil), ""},
		{"header", nil, "", req("", hdr("Bearer "+valid), nil), ""},
		{"header, other scheme ignored", nil, "", req("", hdr("Basic dXNlcjpwYXNz"), nil), "no_token"},
		{"header, bare token ignored", nil, "", req("", hdr(valid), nil), "no_token"},
		{"query off by default", nil, "", req("", nil, q("token", valid)), "no_token"},
		{"query", []string{"query"}, "", req("", nil, q("token", valid)), ""},
		{"query param name", []string{"query"}, "jwt", req("", nil, q("jwt", valid)), ""},
		{"query param name, other ignored", []string{"query"}, "jwt", req("", nil, q("token", valid)), "no_token"},
		{"auth not configured", []string{"header", "query"}, "", req(authJSON(valid), nil, nil), "no_token"},
		{"first found wins: auth bad", nil, "", req(authJSON(bad), hdr("Bearer "+valid), nil), "bad_signature"},
		{"first found wins: header first", []string{"header", "auth"}, "", req(authJSON(bad), hdr("Bearer "+valid), nil), ""},
		{"empty auth token falls through", nil, "", req(authJSON(""), hdr("Bearer "+valid), nil), ""},
		{"auth token not a string", nil, "", req(`{"token":{"a":1}}`, hdr("Bearer "+valid), nil), "malformed"},
		{"auth payload not an object", nil, "", req(`"`+valid+`"`, nil, nil), "no_token"},
	}
	msgs := map[string]string{"no_token": "authentication required: no token", "bad_signature": "invalid token: signature is invalid", "malformed": "invalid token: malformed"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := map[string]any{"secret": testSecret}
			if tc.sources != nil {
				cfg["token_sources"] = tc.sources
			}
			if tc.param != "" {
				cfg["query_param"] = tc.param
			}
			d := decide(t, configured(t, cfg), tc.req)
			if tc.reason == "" {
				wantAllow(t, d, "user-1")
			} else {
				wantRefusal(t, d, msgs[tc.reason], tc.reason)
			}
		})
	}
}
