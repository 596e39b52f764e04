package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/socketfleet/socketfleet/sdk"
)

// Version is the plugin's version, reported in Info.
const Version = "0.1.0"

// Defaults of the optional attributes.
const (
	defaultLeeway     = 30 * time.Second
	defaultQueryParam = "token"
	defaultUserClaim  = "sub"
)

var defaultTokenSources = []string{sourceAuth, sourceHeader}

// Token sources, the values token_sources accepts.
const (
	sourceAuth   = "auth"   // the CONNECT payload's "token" field
	sourceHeader = "header" // Authorization: Bearer <token>
	sourceQuery  = "query"  // the query parameter named by query_param
)

// jwtPlugin is the auth "jwt" plugin. Configure builds an immutable state;
// Authenticate reads it without locks.
type jwtPlugin struct {
	state atomic.Pointer[state]

	// now and logw are replaceable by tests; logw receives the lines the
	// host captures from stderr (JWKS reload failures).
	now  func() time.Time
	logw io.Writer
}

func newPlugin() *jwtPlugin {
	return &jwtPlugin{now: time.Now, logw: os.Stderr}
}

var _ sdk.Authenticator = (*jwtPlugin)(nil)

func (p *jwtPlugin) Info() sdk.Info {
	return sdk.Info{Kind: sdk.KindAuth, Name: "jwt", Version: Version, ProtocolVersion: sdk.ProtocolVersion}
}

func (p *jwtPlugin) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "secret", Type: sdk.TypeString, Description: "HMAC key (the raw bytes of the string) for HS256/HS384/HS512 tokens, " +
			"usually secret = env(\"JWT_SECRET\"). Exactly one of secret, public_key_file and jwks_file is required."},
		{Name: "public_key_file", Type: sdk.TypeString, Description: "Path of a PEM file holding one RSA, ECDSA or Ed25519 public key " +
			"(PUBLIC KEY or RSA PUBLIC KEY) or a certificate. Read once at start-up."},
		{Name: "jwks_file", Type: sdk.TypeString, Description: "Path of a JWKS JSON file ({\"keys\": [...]}) of RSA, EC and Ed25519 (OKP) public keys, " +
			"selected by the token's kid header. The file is checked for changes (mtime, size) at most once per second and reloaded; " +
			"an invalid new file is logged and the previous keys stay in use."},
		{Name: "algorithms", Type: sdk.TypeListString, Description: "Accepted JWS algorithms. Default by key kind: HS256, HS384, HS512 for secret; " +
			"RS256..RS512 and PS256..PS512 for RSA; the ES algorithm of the curve for EC (ES256 P-256, ES384 P-384, ES512 P-521); EdDSA for Ed25519; " +
			"all of these asymmetric ones for jwks_file. \"none\" and algorithms that do not fit the key are refused at start-up."},
		{Name: "issuer", Type: sdk.TypeString, Description: "When set, the token's iss claim must equal it."},
		{Name: "audience", Type: sdk.TypeString, Description: "When set, the token's aud claim (a string or a list) must contain it."},
		{Name: "leeway", Type: sdk.TypeDuration, Description: "Clock skew tolerated on exp and nbf. Default 30s."},
		{Name: "require_exp", Type: sdk.TypeBool, Description: "Refuse tokens without an exp claim. Default true."},
		{Name: "token_sources", Type: sdk.TypeListString, Description: "Where the token is looked for, in order; the first found is used. " +
			"\"auth\": the CONNECT payload's token field (a \"Bearer \" prefix is accepted); \"header\": Authorization: Bearer <token>; " +
			"\"query\": the query parameter named by query_param. Default [\"auth\", \"header\"]."},
		{Name: "query_param", Type: sdk.TypeString, Description: "The query parameter the \"query\" token source reads. Default \"token\"."},
		{Name: "user_claim", Type: sdk.TypeString, Description: "The claim holding the user id (a string, or a number converted to its decimal text). " +
			"Tokens without it are refused. Default \"sub\"."},
		{Name: "rooms_claim", Type: sdk.TypeString, Description: "Optional claim holding a room name or a list of room names the socket joins at connect."},
		{Name: "data_claims", Type: sdk.TypeListString, Description: "Claims copied, in this order and when present, into the socket's data object " +
			"(data.<claim> in rules). Default [\"sub\"] plus user_claim when it differs; [] copies none."},
	}}
}

// config is the decoded config block.
type config struct {
	Secret        *string   `json:"secret"`
	PublicKeyFile *string   `json:"public_key_file"`
	JWKSFile      *string   `json:"jwks_file"`
	Algorithms    *[]string `json:"algorithms"`
	Issuer        string    `json:"issuer"`
	Audience      string    `json:"audience"`
	Leeway        *string   `json:"leeway"`
	RequireExp    *bool     `json:"require_exp"`
	TokenSources  *[]string `json:"token_sources"`
	QueryParam    *string   `json:"query_param"`
	UserClaim     *string   `json:"user_claim"`
	RoomsClaim    *string   `json:"rooms_claim"`
	DataClaims    *[]string `json:"data_claims"`
}

// state is everything Authenticate needs, built once by Configure.
type state struct {
	parser     *jwt.Parser
	algs       []string
	single     *verifyKey // secret or public_key_file
	jwks       *jwksSource
	issuer     string
	audience   string
	leeway     time.Duration
	requireExp bool
	sources    []string
	queryParam string
	userClaim  string
	roomsClaim string
	dataClaims []string
	dataKeys   [][]byte // dataClaims JSON-quoted

	noUser   refusal
	badRooms refusal
	keyfunc  jwt.Keyfunc
}

func (p *jwtPlugin) Configure(ctx context.Context, raw sdk.Config) error {
	var c config
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return fmt.Errorf("decode config: %w", err)
		}
	}
	// Key files are named as the operator reads the config: next to it.
	for _, f := range []*string{c.PublicKeyFile, c.JWKSFile} {
		if f != nil {
			*f = sdk.ResolvePath(ctx, *f)
		}
	}
	s, err := p.build(&c)
	if err != nil {
		return err // the host names the plugin and points at the attribute
	}
	p.state.Store(s)
	return nil
}

func (p *jwtPlugin) build(c *config) (*state, error) {
	s := &state{
		leeway:     defaultLeeway,
		requireExp: true,
		sources:    defaultTokenSources,
		queryParam: defaultQueryParam,
		userClaim:  defaultUserClaim,
		issuer:     c.Issuer,
		audience:   c.Audience,
	}

	// Exactly one key source.
	var set []string
	if c.Secret != nil {
		set = append(set, "secret")
	}
	if c.PublicKeyFile != nil {
		set = append(set, "public_key_file")
	}
	if c.JWKSFile != nil {
		set = append(set, "jwks_file")
	}
	switch len(set) {
	case 0:
		return nil, errors.New("one of secret, public_key_file or jwks_file is required")
	case 1:
	default:
		return nil, fmt.Errorf("only one of secret, public_key_file and jwks_file may be set, not %s", strings.Join(set, " and "))
	}

	var defaults []string
	switch {
	case c.Secret != nil:
		if *c.Secret == "" {
			return nil, sdk.AttrError("secret", "is empty")
		}
		s.single = &verifyKey{kind: kindHMAC, key: []byte(*c.Secret)}
		defaults = s.single.defaultAlgorithms()
	case c.PublicKeyFile != nil:
		k, err := loadPEMFile(*c.PublicKeyFile)
		if err != nil {
			return nil, sdk.AttrError("public_key_file", err.Error())
		}
		s.single = k
		defaults = k.defaultAlgorithms()
	default:
		src, err := newJWKSSource(*c.JWKSFile, p.logw)
		if err != nil {
			return nil, sdk.AttrError("jwks_file", err.Error())
		}
		s.jwks = src
		defaults = asymmetricAlgorithms
	}

	// Algorithms: known, never "none", and fitting the key kind.
	s.algs = defaults
	if c.Algorithms != nil {
		algs := *c.Algorithms
		if len(algs) == 0 {
			return nil, sdk.AttrError("algorithms", "must not be empty")
		}
		for _, a := range algs {
			if strings.EqualFold(a, "none") {
				return nil, sdk.AttrError("algorithms", "\"none\" is never accepted")
			}
			if _, ok := algKinds[a]; !ok {
				return nil, sdk.AttrError("algorithms", fmt.Sprintf("unknown algorithm %q (known: %s)", a, strings.Join(allAlgorithms, ", ")))
			}
			if s.single != nil && !s.single.accepts(a) {
				return nil, sdk.AttrError("algorithms", fmt.Sprintf("%s cannot be used with %s", a, s.single.describe()))
			}
			if s.jwks != nil && algKinds[a] == kindHMAC {
				return nil, sdk.AttrError("algorithms", fmt.Sprintf("%s needs a shared secret; jwks_file holds public keys only", a))
			}
		}
		s.algs = slices.Clone(algs)
	}

	if c.Leeway != nil {
		d, err := time.ParseDuration(*c.Leeway)
		if err != nil {
			return nil, sdk.AttrError("leeway", fmt.Sprintf("invalid duration %q", *c.Leeway))
		}
		if d < 0 {
			return nil, sdk.AttrError("leeway", fmt.Sprintf("must not be negative, got %s", *c.Leeway))
		}
		s.leeway = d
	}
	if c.RequireExp != nil {
		s.requireExp = *c.RequireExp
	}

	if c.TokenSources != nil {
		srcs := *c.TokenSources
		if len(srcs) == 0 {
			return nil, sdk.AttrError("token_sources", "must not be empty")
		}
		for i, v := range srcs {
			switch v {
			case sourceAuth, sourceHeader, sourceQuery:
			default:
				return nil, sdk.AttrError("token_sources", fmt.Sprintf("unknown source %q (use \"auth\", \"header\" or \"query\")", v))
			}
			if slices.Contains(srcs[:i], v) {
				return nil, sdk.AttrError("token_sources", fmt.Sprintf("%q is listed twice", v))
			}
		}
		s.sources = slices.Clone(srcs)
	}
	if c.QueryParam != nil {
		if *c.QueryParam == "" {
			return nil, sdk.AttrError("query_param", "must not be empty")
		}
		s.queryParam = *c.QueryParam
	}

	if c.UserClaim != nil {
		if *c.UserClaim == "" {
			return nil, sdk.AttrError("user_claim", "must not be empty")
		}
		s.userClaim = *c.UserClaim
	}
	if c.RoomsClaim != nil {
		if *c.RoomsClaim == "" {
			return nil, sdk.AttrError("rooms_claim", "must not be empty (leave it out for no rooms)")
		}
		s.roomsClaim = *c.RoomsClaim
	}
	if c.DataClaims != nil {
		s.dataClaims = []string{}
		for _, name := range *c.DataClaims {
			if name == "" {
				return nil, sdk.AttrError("data_claims", "empty claim name")
			}
			if slices.Contains(s.dataClaims, name) {
				return nil, sdk.AttrError("data_claims", fmt.Sprintf("%q is listed twice", name))
			}
			s.dataClaims = append(s.dataClaims, name)
		}
	} else {
		s.dataClaims = []string{"sub"}
		if s.userClaim != "sub" {
			s.dataClaims = append(s.dataClaims, s.userClaim)
		}
	}

	for _, name := range s.dataClaims {
		k, _ := json.Marshal(name)
		s.dataKeys = append(s.dataKeys, k)
	}
	s.noUser = newRefusal("no_user", "invalid token: no "+s.userClaim+" claim")
	s.badRooms = newRefusal("bad_rooms", "invalid token: "+s.roomsClaim+" claim must be a string or a list of strings")
	// Claims are validated by Authenticate itself (exact messages and
	// precedence); the parser checks structure, algorithm and signature.
	s.parser = jwt.NewParser(jwt.WithValidMethods(s.algs), jwt.WithoutClaimsValidation())
	s.keyfunc = s.key
	return s, nil
}
