package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/socketfleet/socketfleet/internal/testkit"
	"github.com/socketfleet/socketfleet/sdk"
)

func TestConfigureErrors(t *testing.T) {
	k := getKeys(t)
	rsaPath := writeFile(t, "rsa.pem", pubPEM(t, &k.rsa.PublicKey))
	ecPath := writeFile(t, "ec.pem", pubPEM(t, &k.p256.PublicKey))
	jwksPath := writeFile(t, "jwks.json", jwksJSON(t, jwkOf(t, "k", "", &k.rsa.PublicKey)))
	privDER, _ := x509.MarshalPKCS8PrivateKey(k.rsa)
	privPath := writeFile(t, "priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
	privJWK := jwkOf(t, "p", "", k.ed.Public())
	privJWK["d"] = "AAAA"

	tests := []struct {
		name string
		cfg  string
		want string // substring of the error
	}{
		{"empty block", `{}`, "one of secret, public_key_file or jwks_file is required"},
		{"nil config", ``, "one of secret, public_key_file or jwks_file is required"},
		{"secret and jwks_file", `{"secret":"s","jwks_file":"` + jwksPath + `"}`, "only one of secret, public_key_file and jwks_file may be set, not secret and jwks_file"},
		{"all three", `{"secret":"s","public_key_file":"` + rsaPath + `","jwks_file":"` + jwksPath + `"}`, "not secret and public_key_file and jwks_file"},
		{"empty secret", `{"secret":""}`, "secret: is empty"},
		{"missing PEM file", `{"public_key_file":"/nonexistent/key.pem"}`, "public_key_file: open /nonexistent/key.pem"},
		{"not PEM", `{"public_key_file":"` + writeFile(t, "junk.pem", []byte("hello")) + `"}`, "junk.pem: no PEM public key or certificate found"},
		{"PEM garbage inside", `{"public_key_file":"` + writeFile(t, "bad.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("nope")})) + `"}`, "invalid PUBLIC KEY"},
		{"private key PEM", `{"public_key_file":"` + privPath + `"}`, "found a PRIVATE KEY; give the public key"},
		{"bad leeway", `{"secret":"s","leeway":"soon"}`, `leeway: invalid duration "soon"`},
		{"negative leeway", `{"secret":"s","leeway":"-5s"}`, "leeway: must not be negative"},
		{"alg none", `{"secret":"s","algorithms":["HS256","none"]}`, `algorithms: "none" is never accepted`},
		{"alg NONE", `{"secret":"s","algorithms":["NONE"]}`, `"none" is never accepted`},
		{"unknown alg", `{"secret":"s","algorithms":["HS1"]}`, `algorithms: unknown algorithm "HS1"`},
		{"empty algorithms", `{"secret":"s","algorithms":[]}`, "algorithms: must not be empty"},
		{"RS256 with a secret", `{"secret":"s","algorithms":["RS256"]}`, "algorithms: RS256 cannot be used with a secret"},
		{"HS256 with an RSA key", `{"public_key_file":"` + rsaPath + `","algorithms":["RS256","HS256"]}`, "algorithms: HS256 cannot be used with an RSA public key"},
		{"ES384 with a P-256 key", `{"public_key_file":"` + ecPath + `","algorithms":["ES384"]}`, "algorithms: ES384 cannot be used with an EC public key (ES256 only)"},
		{"HS256 with jwks_file", `{"jwks_file":"` + jwksPath + `","algorithms":["HS256"]}`, "HS256 needs a shared secret"},
		{"missing JWKS", `{"jwks_file":"/nonexistent/jwks.json"}`, "jwks_file: open /nonexistent/jwks.json"},
		{"JWKS not JSON", `{"jwks_file":"` + writeFile(t, "j1.json", []byte("{")) + `"}`, "jwks_file: invalid JSON"},
		{"JWKS without keys", `{"jwks_file":"` + writeFile(t, "j2.json", []byte(`{"foo":1}`)) + `"}`, `no "keys" array`},
		{"JWKS with no usable key", `{"jwks_file":"` + writeFile(t, "j3.json", []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)) + `"}`, "no usable signing key"},
		{"JWKS private key", `{"jwks_file":"` + writeFile(t, "j4.json", jwksJSON(t, privJWK)) + `"}`, "holds a private key"},
		{"JWKS duplicate kid", `{"jwks_file":"` + writeFile(t, "j5.json", jwksJSON(t, jwkOf(t, "k", "", &k.rsa.PublicKey), jwkOf(t, "k", "", k.ed.Public()))) + `"}`, `kid "k" appears twice`},
		{"JWKS alg mismatch", `{"jwks_file":"` + writeFile(t, "j6.json", jwksJSON(t, jwkOf(t, "k", "ES256", &k.rsa.PublicKey))) + `"}`, `alg "ES256" does not fit a RSA key`},
		{"JWKS alg none", `{"jwks_file":"` + writeFile(t, "j7.json", jwksJSON(t, jwkOf(t, "k", "none", &k.rsa.PublicKey))) + `"}`, `alg "none" is never accepted`},
		{"JWKS bad base64", `{"jwks_file":"` + writeFile(t, "j8.json", []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"!!"}]}`)) + `"}`, `invalid base64url in "x"`},
		{"unknown token source", `{"secret":"s","token_sources":["cookie"]}`, `token_sources: unknown source "cookie"`},
		{"empty token sources", `{"secret":"s","token_sources":[]}`, "token_sources: must not be empty"},
		{"repeated token source", `{"secret":"s","token_sources":["auth","auth"]}`, `token_sources: "auth" is listed twice`},
		{"empty query_param", `{"secret":"s","query_param":""}`, "query_param: must not be empty"},
		{"empty user_claim", `{"secret":"s","user_claim":""}`, "user_claim: must not be empty"},
		{"empty rooms_claim", `{"secret":"s","rooms_claim":""}`, "rooms_claim: must not be empty"},
		{"repeated data claim", `{"secret":"s","data_claims":["sub","sub"]}`, `data_claims: "sub" is listed twice`},
		{"unknown attribute", `{"secret":"s","sekret":"x"}`, `unknown field "sekret"`},
		{"wrong type", `{"secret":"s","leeway":30}`, "decode config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlugin()
			p.logw = &testkit.Buffer{}
			err := p.Configure(context.Background(), sdk.Config(tc.cfg))
			if err == nil {
				t.Fatalf("Configure(%s) succeeded, want error containing %q", tc.cfg, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Configure error = %q\nwant it to contain %q", err, tc.want)
			}
			// An error about one attribute says which, so that the host
			// points at it (the host names the plugin: the message does not).
			if attr, _, ok := strings.Cut(tc.want, ": "); ok && schemaHas(attr) {
				var ae *sdk.AttributeError
				if !errors.As(err, &ae) || ae.Attribute != attr {
					t.Errorf("error %q is not an sdk.AttributeError about %s", err, attr)
				}
			}
			if strings.Contains(err.Error(), `auth "jwt"`) {
				t.Errorf("error %q repeats the plugin's name", err)
			}
			if p.state.Load() != nil {
				t.Error("a failed Configure left a state behind")
			}
		})
	}
}

func schemaHas(name string) bool {
	for _, a := range newPlugin().ConfigSchema().Attributes {
		if a.Name == name {
			return true
		}
	}
	return false
}

func TestConfigureDefaults(t *testing.T) {
	k := getKeys(t)
	tests := []struct {
		name string
		cfg  map[string]any
		algs []string
	}{
		{"secret", map[string]any{"secret": "s"}, []string{"HS256", "HS384", "HS512"}},
		{"RSA", map[string]any{"public_key_file": writeFile(t, "r.pem", pubPEM(t, &k.rsa.PublicKey))}, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}},
		{"P-384", map[string]any{"public_key_file": writeFile(t, "e.pem", pubPEM(t, &k.p384.PublicKey))}, []string{"ES384"}},
		{"Ed25519", map[string]any{"public_key_file": writeFile(t, "d.pem", pubPEM(t, k.ed.Public()))}, []string{"EdDSA"}},
		{"JWKS", map[string]any{"jwks_file": writeFile(t, "j.json", jwksJSON(t, jwkOf(t, "k", "", k.ed.Public())))}, asymmetricAlgorithms},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := configured(t, tc.cfg).state.Load()
			if strings.Join(s.algs, ",") != strings.Join(tc.algs, ",") {
				t.Errorf("algorithms = %v, want %v", s.algs, tc.algs)
			}
			if s.leeway.String() != "30s" || !s.requireExp || s.queryParam != "token" || s.userClaim != "sub" ||
				strings.Join(s.sources, ",") != "auth,header" || strings.Join(s.dataClaims, ",") != "sub" || s.roomsClaim != "" {
				t.Errorf("defaults: %+v", s)
			}
		})
	}
	s := configured(t, map[string]any{"secret": "s", "user_claim": "email"}).state.Load()
	if got := strings.Join(s.dataClaims, ","); got != "sub,email" {
		t.Errorf("data_claims default with user_claim email = %s, want sub,email", got)
	}
	// A config as the core encodes it (durations as strings).
	raw, _ := json.Marshal(map[string]any{"secret": "s", "leeway": "1m30s", "require_exp": false})
	p := newPlugin()
	if err := p.Configure(context.Background(), sdk.Config(raw)); err != nil {
		t.Fatal(err)
	}
	if s := p.state.Load(); s.leeway.String() != "1m30s" || s.requireExp {
		t.Errorf("leeway %s require_exp %v", s.leeway, s.requireExp)
	}
}
