package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/socketfleet/socketfleet/sdk"
)

const testSecret = "a-test-secret-of-at-least-32-bytes!!"

func hsConfig(extra ...any) map[string]any {
	cfg := map[string]any{"secret": testSecret, "issuer": "https://id.example", "audience": "chat", "rooms_claim": "rooms"}
	for i := 0; i < len(extra); i += 2 {
		cfg[extra[i].(string)] = extra[i+1]
	}
	return cfg
}

func TestInfoAndSchema(t *testing.T) {
	p := newPlugin()
	info := p.Info()
	if info != (sdk.Info{Kind: sdk.KindAuth, Name: "jwt", Version: "0.1.0", ProtocolVersion: sdk.ProtocolVersion}) {
		t.Errorf("Info = %+v", info)
	}
	want := map[string]sdk.AttrType{
		"secret": sdk.TypeString, "public_key_file": sdk.TypeString, "jwks_file": sdk.TypeString,
		"algorithms": sdk.TypeListString, "issuer": sdk.TypeString, "audience": sdk.TypeString,
		"leeway": sdk.TypeDuration, "require_exp": sdk.TypeBool, "token_sources": sdk.TypeListString,
		"query_param": sdk.TypeString, "user_claim": sdk.TypeString, "rooms_claim": sdk.TypeString,
		"data_claims": sdk.TypeListString,
	}
	attrs := p.ConfigSchema().Attributes
	if len(attrs) != len(want) {
		t.Errorf("%d attributes, want %d", len(attrs), len(want))
	}
	for _, a := range attrs {
		if ty, ok := want[a.Name]; !ok || ty != a.Type {
			t.Errorf("attribute %s: type %s, want %s", a.Name, a.Type, ty)
		}
		if a.Required {
			t.Errorf("attribute %s is required; exactly-one-of is checked by Configure", a.Name)
		}
		if a.Description == "" {
			t.Errorf("attribute %s has no description", a.Name)
		}
	}
	// The struct tags Configure decodes must match the schema names.
	raw, _ := json.Marshal(config{})
	var tags map[string]any
	_ = json.Unmarshal(raw, &tags)
	for name := range want {
		if _, ok := tags[name]; !ok {
			t.Errorf("config has no field for %s", name)
		}
	}
}

func TestAuthenticateBeforeConfigure(t *testing.T) {
	if _, err := newPlugin().Authenticate(context.Background(), authReq("x")); err == nil {
		t.Fatal("want a Go error before Configure")
	}
}

func TestRefusals(t *testing.T) {
	p := configured(t, hsConfig())
	hs := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodHS256, []byte(testSecret), "", c) }
	valid := hs(validClaims())
	parts := strings.Split(valid, ".")
	otherPayload := strings.Split(hs(with(validClaims(), "sub", "admin")), ".")[1]
	noneTok := mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", validClaims())

	tests := []struct {
		name    string
		req     *sdk.AuthRequest
		message string
		reason  string
	}{
		{"empty auth", &sdk.AuthRequest{Auth: json.RawMessage(`{}`)}, "authentication required: no token", "no_token"},
		{"nil auth", &sdk.AuthRequest{}, "authentication required: no token", "no_token"},
		{"empty token", authReq(""), "authentication required: no token", "no_token"},
		{"null token", &sdk.AuthRequest{Auth: json.RawMessage(`{"token":null}`)}, "authentication required: no token", "no_token"},
		{"other key case", &sdk.AuthRequest{Auth: json.RawMessage(`{"Token":"` + valid + `"}`)}, "authentication required: no token", "no_token"},
		{"not a jwt", authReq("hello"), "invalid token: malformed", "malformed"},
		{"three garbage parts", authReq("a.b.c"), "invalid token: malformed", "malformed"},
		{"four parts", authReq(valid + ".x"), "invalid token: malformed", "malformed"},
		{"claims not json", authReq(parts[0] + ".bm90IGpzb24." + parts[2]), "invalid token: malformed", "malformed"},
		{"claims an array", authReq(parts[0] + ".W10." + parts[2]), "invalid token: malformed", "malformed"},
		{"exp a string", authReq(hs(with(validClaims(), "exp", "tomorrow"))), "invalid token: malformed", "malformed"},
		{"iss a number", authReq(hs(with(validClaims(), "iss", 5))), "invalid token: malformed", "malformed"},
		{"aud a number", authReq(hs(with(validClaims(), "aud", 5))), "invalid token: malformed", "malformed"},
		{"aud list with a number", authReq(hs(with(validClaims(), "aud", []any{"chat", 5}))), "invalid token: malformed", "malformed"},
		{"token a number", &sdk.AuthRequest{Auth: json.RawMessage(`{"token":42}`)}, "invalid token: malformed", "malformed"},
		{"too large", authReq(parts[0] + "." + strings.Repeat("A", maxTokenSize) + "." + parts[2]), "invalid token: malformed", "malformed"},
		{"wrong secret", authReq(mint(t, jwt.SigningMethodHS256, []byte("another secret, also quite long"), "", validClaims())), "invalid token: signature is invalid", "bad_signature"},
		{"tampered payload", authReq(parts[0] + "." + otherPayload + "." + parts[2]), "invalid token: signature is invalid", "bad_signature"},
		{"expired", authReq(hs(with(validClaims(), "exp", testNow.Add(-time.Hour).Unix()))), "invalid token: token has expired", "expired"},
		{"not yet valid", authReq(hs(with(validClaims(), "nbf", testNow.Add(time.Hour).Unix()))), "invalid token: token is not valid yet", "not_yet_valid"},
		{"no exp", authReq(hs(with(validClaims(), "exp", nil))), "invalid token: no exp claim", "no_exp"},
		{"wrong issuer", authReq(hs(with(validClaims(), "iss", "https://evil.example"))), "invalid token: wrong issuer", "wrong_issuer"},
		{"no issuer", authReq(hs(with(validClaims(), "iss", nil))), "invalid token: wrong issuer", "wrong_issuer"},
		{"wrong audience", authReq(hs(with(validClaims(), "aud", "admin"))), "invalid token: wrong audience", "wrong_audience"},
		{"wrong audience list", authReq(hs(with(validClaims(), "aud", []string{"admin", "billing"}))), "invalid token: wrong audience", "wrong_audience"},
		{"no audience", authReq(hs(with(validClaims(), "aud", nil))), "invalid token: wrong audience", "wrong_audience"},
		{"no sub", authReq(hs(with(validClaims(), "sub", nil))), "invalid token: no sub claim", "no_user"},
		{"empty sub", authReq(hs(with(validClaims(), "sub", ""))), "invalid token: no sub claim", "no_user"},
		{"sub an object", authReq(hs(with(validClaims(), "sub", map[string]any{"id": 1}))), "invalid token: no sub claim", "no_user"},
		{"rooms a number", authReq(hs(with(validClaims(), "rooms", 7))), "invalid token: rooms claim must be a string or a list of strings", "bad_rooms"},
		{"rooms mixed list", authReq(hs(with(validClaims(), "rooms", []any{"a", 1}))), "invalid token: rooms claim must be a string or a list of strings", "bad_rooms"},
		{"alg none", authReq(noneTok), "invalid token: algorithm not allowed", "algorithm"},
		{"alg unknown", authReq(forgeHeader(t, valid, `{"alg":"XS999","typ":"JWT"}`)), "invalid token: algorithm not allowed", "algorithm"},
		{"alg missing", authReq(forgeHeader(t, valid, `{"typ":"JWT"}`)), "invalid token: malformed", "malformed"},
		// Expiry is reported before issuer and audience.
		{"expired and wrong issuer", authReq(hs(with(validClaims(), "exp", testNow.Add(-time.Hour).Unix(), "iss", "x"))), "invalid token: token has expired", "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantRefusal(t, decide(t, p, tc.req), tc.message, tc.reason)
		})
	}

	t.Run("custom user claim named", func(t *testing.T) {
		p := configured(t, hsConfig("user_claim", "uid"))
		wantRefusal(t, decide(t, p, authReq(hs(validClaims()))), "invalid token: no uid claim", "no_user")
	})
	t.Run("algorithm outside the configured list", func(t *testing.T) {
		p := configured(t, hsConfig("algorithms", []string{"HS512"}))
		wantRefusal(t, decide(t, p, authReq(valid)), "invalid token: algorithm not allowed", "algorithm")
		wantAllow(t, decide(t, p, authReq(mint(t, jwt.SigningMethodHS512, []byte(testSecret), "", validClaims()))), "user-1")
	})
	t.Run("refusal data is not shared", func(t *testing.T) {
		d := decide(t, p, authReq(""))
		d.ErrorData[0] = 'X'
		wantRefusal(t, decide(t, p, authReq("")), "authentication required: no token", "no_token")
	})
}

// forgeHeader replaces a token's header, keeping payload and signature.
func forgeHeader(t *testing.T, tok, header string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + parts[1] + "." + parts[2]
}

func TestSuccess(t *testing.T) {
	hs := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodHS256, []byte(testSecret), "", c) }
	tests := []struct {
		name   string
		cfg    map[string]any
		claims jwt.MapClaims
		user   string
		rooms  []string
		data   string
	}{
		{"defaults", hsConfig(), validClaims(), "user-1", nil, `{"sub":"user-1"}`},
		{"rooms list", hsConfig(), with(validClaims(), "rooms", []string{"lobby", "team-7", "lobby", ""}), "user-1", []string{"lobby", "team-7"}, `{"sub":"user-1"}`},
		{"rooms string", hsConfig(), with(validClaims(), "rooms", "lobby"), "user-1", []string{"lobby"}, `{"sub":"user-1"}`},
		{"escaped strings", hsConfig(), with(validClaims(), "sub", "é\"<x>", "rooms", []string{"a\\b", "\u2028"}), "é\"<x>", []string{"a\\b", "\u2028"}, `{"sub":"é\"\u003cx\u003e"}`},
		{"rooms null", hsConfig(), with(validClaims(), "rooms", json.RawMessage(`null`)), "user-1", nil, `{"sub":"user-1"}`},
		{"audience in list", hsConfig(), with(validClaims(), "aud", []string{"billing", "chat"}), "user-1", nil, `{"sub":"user-1"}`},
		{"numeric user claim", hsConfig("user_claim", "uid"), with(validClaims(), "uid", 12345), "12345", nil, `{"sub":"user-1","uid":12345}`},
		{"big numeric user claim", hsConfig("user_claim", "uid"), with(validClaims(), "uid", json.Number("123456789012345678901")), "123456789012345678901", nil, `{"sub":"user-1","uid":123456789012345678901}`},
		{"float user claim", hsConfig("user_claim", "uid"), with(validClaims(), "uid", 1.5e3), "1500", nil, `{"sub":"user-1","uid":1500}`},
		{"data claims in order", hsConfig("data_claims", []string{"role", "sub", "missing", "meta"}),
			with(validClaims(), "role", "admin", "meta", map[string]any{"b": []int{1, 2}, "a": "x"}), "user-1", nil,
			`{"role":"admin","sub":"user-1","meta":{"a":"x","b":[1,2]}}`},
		{"no data claims", hsConfig("data_claims", []string{}), validClaims(), "user-1", nil, `{}`},
		{"no exp when not required", hsConfig("require_exp", false), with(validClaims(), "exp", nil), "user-1", nil, `{"sub":"user-1"}`},
		{"no issuer or audience configured", map[string]any{"secret": testSecret}, with(validClaims(), "iss", nil, "aud", nil), "user-1", nil, `{"sub":"user-1"}`},
		{"nbf in the past", hsConfig(), with(validClaims(), "nbf", testNow.Add(-time.Minute).Unix()), "user-1", nil, `{"sub":"user-1"}`},
		{"fractional exp", hsConfig(), with(validClaims(), "exp", float64(testNow.Unix())+0.5), "user-1", nil, `{"sub":"user-1"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := configured(t, tc.cfg)
			d := decide(t, p, authReq(hs(tc.claims)))
			wantAllow(t, d, tc.user)
			if !slices.Equal(d.Rooms, tc.rooms) {
				t.Errorf("rooms = %q, want %q", d.Rooms, tc.rooms)
			}
			if string(d.Data) != tc.data {
				t.Errorf("data = %s, want %s", d.Data, tc.data)
			}
			if d.Message != "" || d.ErrorData != nil {
				t.Errorf("allow with message %q / error data %s", d.Message, d.ErrorData)
			}
		})
	}
}

func TestLeeway(t *testing.T) {
	hs := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodHS256, []byte(testSecret), "", c) }
	sec := func(d time.Duration) int64 { return testNow.Add(d).Unix() }
	tests := []struct {
		name   string
		leeway any // nil = default 30s
		claim  string
		at     int64
		reason string // "" = allowed
	}{
		{"exp 10s ago within default", nil, "exp", sec(-10 * time.Second), ""},
		{"exp 29s ago within default", nil, "exp", sec(-29 * time.Second), ""},
		{"exp 30s ago at default edge", nil, "exp", sec(-30 * time.Second), "expired"},
		{"exp 31s ago past default", nil, "exp", sec(-31 * time.Second), "expired"},
		{"nbf 20s ahead within default", nil, "nbf", sec(20 * time.Second), ""},
		{"nbf 30s ahead at default edge", nil, "nbf", sec(30 * time.Second), ""},
		{"nbf 31s ahead past default", nil, "nbf", sec(31 * time.Second), "not_yet_valid"},
		{"zero leeway exp now", "0s", "exp", sec(0), "expired"},
		{"zero leeway exp 1s ahead", "0s", "exp", sec(time.Second), ""},
		{"zero leeway nbf 1s ahead", "0s", "nbf", sec(time.Second), "not_yet_valid"},
		{"2m leeway exp 90s ago", "2m", "exp", sec(-90 * time.Second), ""},
		{"2m leeway nbf 90s ahead", "2m", "nbf", sec(90 * time.Second), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hsConfig()
			if tc.leeway != nil {
				cfg["leeway"] = tc.leeway
			}
			p := configured(t, cfg)
			d := decide(t, p, authReq(hs(with(validClaims(), tc.claim, tc.at))))
			if tc.reason == "" {
				wantAllow(t, d, "user-1")
				return
			}
			msg := map[string]string{"expired": "invalid token: token has expired", "not_yet_valid": "invalid token: token is not valid yet"}[tc.reason]
			wantRefusal(t, d, msg, tc.reason)
		})
	}
}

func TestPublicKeys(t *testing.T) {
	k := getKeys(t)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	tests := []struct {
		name   string
		pem    []byte
		method jwt.SigningMethod
		key    any
	}{
		{"RSA RS256", pubPEM(t, &k.rsa.PublicKey), jwt.SigningMethodRS256, k.rsa},
		{"RSA RS512", pubPEM(t, &k.rsa.PublicKey), jwt.SigningMethodRS512, k.rsa},
		{"RSA PS256", pubPEM(t, &k.rsa.PublicKey), jwt.SigningMethodPS256, k.rsa},
		{"RSA PKCS1 PEM", pkcs1, jwt.SigningMethodRS256, k.rsa},
		{"RSA certificate", certPEM(t, k.rsa), jwt.SigningMethodRS384, k.rsa},
		{"EC P-256", pubPEM(t, &k.p256.PublicKey), jwt.SigningMethodES256, k.p256},
		{"EC P-384", pubPEM(t, &k.p384.PublicKey), jwt.SigningMethodES384, k.p384},
		{"EC P-521", pubPEM(t, &k.p521.PublicKey), jwt.SigningMethodES512, k.p521},
		{"EC certificate", certPEM(t, k.p256), jwt.SigningMethodES256, k.p256},
		{"Ed25519", pubPEM(t, k.ed.Public()), jwt.SigningMethodEdDSA, k.ed},
		{"Ed25519 certificate", certPEM(t, k.ed), jwt.SigningMethodEdDSA, k.ed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := configured(t, map[string]any{"public_key_file": writeFile(t, "key.pem", tc.pem), "audience": "chat"})
			wantAllow(t, decide(t, p, authReq(mint(t, tc.method, tc.key, "", validClaims()))), "user-1")
			// The same claims signed by another key of the same kind.
			other := otherKeyLike(t, tc.key)
			wantRefusal(t, decide(t, p, authReq(mint(t, tc.method, other, "", validClaims()))), "invalid token: signature is invalid", "bad_signature")
		})
	}
}
