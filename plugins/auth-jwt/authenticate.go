package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/socketfleet/socketfleet/sdk"
)

// maxTokenSize bounds the tokens looked at; longer ones are refused as
// malformed before any parsing.
const maxTokenSize = 64 << 10

// refusal is a prepared refusal: its message and {"reason": "<code>"}.
type refusal struct {
	message   string
	errorData []byte
}

func newRefusal(reason, message string) refusal {
	data, _ := json.Marshal(struct {
		Reason string `json:"reason"`
	}{reason})
	return refusal{message: message, errorData: data}
}

func (r refusal) decision() *sdk.AuthDecision {
	return &sdk.AuthDecision{Message: r.message, ErrorData: slices.Clone(r.errorData)}
}

// The refusals; the per-claim ones (no_user, bad_rooms) are built by
// Configure since they name the configured claim.
var (
	refNoToken     = newRefusal("no_token", "authentication required: no token")
	refMalformed   = newRefusal("malformed", "invalid token: malformed")
	refAlgorithm   = newRefusal("algorithm", "invalid token: algorithm not allowed")
	refUnknownKey  = newRefusal("unknown_key", "invalid token: unknown key")
	refSignature   = newRefusal("bad_signature", "invalid token: signature is invalid")
	refExpired     = newRefusal("expired", "invalid token: token has expired")
	refNotYetValid = newRefusal("not_yet_valid", "invalid token: token is not valid yet")
	refNoExp       = newRefusal("no_exp", "invalid token: no exp claim")
	refIssuer      = newRefusal("wrong_issuer", "invalid token: wrong issuer")
	refAudience    = newRefusal("wrong_audience", "invalid token: wrong audience")
)

// Errors the key function returns; classify maps them to refusals.
var (
	errAlgorithm  = errors.New("algorithm not allowed for the key")
	errUnknownKey = errors.New("no key for the token's kid")
)

// Authenticate verifies the connecting socket's token. Bad, missing or
// expired tokens are refusals (Allow false), never Go errors.
func (p *jwtPlugin) Authenticate(_ context.Context, req *sdk.AuthRequest) (*sdk.AuthDecision, error) {
	s := p.state.Load()
	if s == nil {
		return nil, errors.New("auth-jwt: Authenticate before Configure")
	}
	if req == nil {
		req = &sdk.AuthRequest{}
	}
	tok, bad := s.findToken(req)
	if bad || len(tok) > maxTokenSize {
		return refMalformed.decision(), nil
	}
	if tok == "" {
		return refNoToken.decision(), nil
	}

	var c claims
	token, err := s.parser.ParseWithClaims(tok, &c, s.keyfunc)
	if err != nil {
		return s.classify(token, err).decision(), nil
	}

	now := p.now()
	if c.exp == nil {
		if s.requireExp {
			return refNoExp.decision(), nil
		}
	} else if !now.Before(c.exp.Add(s.leeway)) {
		return refExpired.decision(), nil
	}
	if c.nbf != nil && now.Before(c.nbf.Add(-s.leeway)) {
		return refNotYetValid.decision(), nil
	}
	if s.issuer != "" && c.iss != s.issuer {
		return refIssuer.decision(), nil
	}
	if s.audience != "" && !slices.Contains(c.aud, s.audience) {
		return refAudience.decision(), nil
	}

	user, ok := userID(c.raw[s.userClaim])
	if !ok {
		return s.noUser.decision(), nil
	}
	var rooms []string
	if s.roomsClaim != "" {
		if rooms, ok = roomList(c.raw[s.roomsClaim]); !ok {
			return s.badRooms.decision(), nil
		}
	}
	return &sdk.AuthDecision{Allow: true, UserID: user, Rooms: rooms, Data: s.data(c.raw), RedactAuth: redactAuth}, nil
}

// redactAuth: the CONNECT payload's token is a credential; the socket does
// not keep it (the backend API and event rules never see it). Dropped
// whichever source the token was read from: a token field beside a header
// token is a secret all the same.
var redactAuth = []string{"token"}

// key is the jwt.Keyfunc: the key of the token's kind (and kid, for a
// JWKS), only when the token's algorithm is allowed and fits that key.
func (s *state) key(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if !slices.Contains(s.algs, alg) {
		return nil, errAlgorithm
	}
	k := s.single
	if s.jwks != nil {
		kid, _ := t.Header["kid"].(string)
		if k = s.jwks.current().lookup(kid); k == nil {
			return nil, errUnknownKey
		}
	}
	if !k.accepts(alg) {
		return nil, errAlgorithm
	}
	return k.key, nil
}

// classify maps a parse error to its refusal.
func (s *state) classify(token *jwt.Token, err error) refusal {
	switch {
	case errors.Is(err, errUnknownKey):
		return refUnknownKey
	case errors.Is(err, errAlgorithm):
		return refAlgorithm
	case errors.Is(err, jwt.ErrTokenMalformed), token == nil:
		return refMalformed
	case token.Method == nil:
		// alg missing (malformed) or not one the library knows.
		if alg, ok := token.Header["alg"].(string); ok && alg != "" {
			return refAlgorithm
		}
		return refMalformed
	case !slices.Contains(s.algs, token.Method.Alg()):
		return refAlgorithm // includes "none"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refSignature
	default:
		return refMalformed
	}
}

// findToken returns the first token found in the configured sources, or
// bad when the CONNECT payload's token field is not a string.
func (s *state) findToken(req *sdk.AuthRequest) (tok string, bad bool) {
	for _, src := range s.sources {
		switch src {
		case sourceAuth:
			t, bad := authToken(req.Auth)
			if bad || t != "" {
				return t, bad
			}
		case sourceHeader:
			h, ok := req.Headers["authorization"]
			if !ok {
				h = req.Headers["Authorization"]
			}
			if t, ok := cutBearer(h); ok && t != "" {
				return t, false
			}
		case sourceQuery:
			if t := strings.TrimSpace(req.Query[s.queryParam]); t != "" {
				return t, false
			}
		}
	}
	return "", false
}

// authToken reads the CONNECT payload's "token" field; a "Bearer " prefix
// is dropped. A payload that is not an object has no token.
func authToken(auth json.RawMessage) (string, bool) {
	if len(auth) == 0 {
		return "", false
	}
	// A map, not a struct: struct fields would also match "Token" or "TOKEN".
	var payload map[string]json.RawMessage
	if json.Unmarshal(auth, &payload) != nil {
		return "", false
	}
	v := payload["token"]
	if len(v) == 0 || string(v) == "null" {
		return "", false
	}
	t, ok := jsonString(v)
	if !ok {
		return "", true
	}
	if rest, ok := cutBearer(t); ok {
		return rest, false
	}
	return strings.TrimSpace(t), false
}

// cutBearer strips a case-insensitive "Bearer " scheme.
func cutBearer(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(v[7:]), true
}

// userID reads the user claim: a non-empty string, or a number as its
// decimal text.
func userID(v json.RawMessage) (string, bool) {
	if len(v) == 0 {
		return "", false
	}
	switch c := v[0]; {
	case c == '"':
		s, ok := jsonString(v)
		return s, ok && s != ""
	case c == '-' || (c >= '0' && c <= '9'):
		lit := string(v)
		if !strings.ContainsAny(lit, ".eE") {
			return lit, true
		}
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			return "", false
		}
		return strconv.FormatFloat(f, 'f', -1, 64), true
	default:
		return "", false
	}
}

// roomList reads the rooms claim: absent or null means none, a string is
// one room, a list of strings is rooms (empty names and repeats dropped).
func roomList(v json.RawMessage) ([]string, bool) {
	if isNull(v) {
		return nil, true
	}
	rooms, ok := stringOrList(v, true)
	if len(rooms) == 0 {
		rooms = nil
	}
	return rooms, ok
}

// data builds the Decision.Data object from data_claims, in their order.
func (s *state) data(raw map[string]json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	buf.Grow(64)
	buf.WriteByte('{')
	first := true
	for i, name := range s.dataClaims {
		v, ok := raw[name]
		if !ok {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		buf.Write(s.dataKeys[i])
		buf.WriteByte(':')
		if json.Compact(&buf, v) != nil {
			buf.WriteString("null") // unreachable: v came out of a JSON decode
		}
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// claims decodes the payload once: every claim kept raw (for the user,
// rooms and data claims) and the registered ones the checks need, read
// straight from their raw JSON.
type claims struct {
	raw map[string]json.RawMessage
	exp *time.Time
	nbf *time.Time
	iss string
	aud []string
}

var errClaimsNotObject = errors.New("claims are not a JSON object")

func (c *claims) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &c.raw); err != nil {
		return err
	}
	if c.raw == nil {
		return errClaimsNotObject
	}
	var err error
	if c.exp, err = numericDate("exp", c.raw["exp"]); err != nil {
		return err
	}
	if c.nbf, err = numericDate("nbf", c.raw["nbf"]); err != nil {
		return err
	}
	if v := c.raw["iss"]; !isNull(v) {
		var ok bool
		if c.iss, ok = jsonString(v); !ok {
			return errors.New("iss is not a string")
		}
	}
	if v := c.raw["aud"]; !isNull(v) {
		var ok bool
		if c.aud, ok = stringOrList(v, false); !ok {
			return errors.New("aud is not a string or a list of strings")
		}
	}
	return nil
}

func isNull(v json.RawMessage) bool { return len(v) == 0 || string(v) == "null" }

// numericDate reads an exp/nbf claim: seconds since the epoch, possibly
// fractional.
func numericDate(name string, v json.RawMessage) (*time.Time, error) {
	if isNull(v) {
		return nil, nil
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("%s is not a number", name)
	}
	sec, frac := math.Modf(f)
	t := time.Unix(int64(sec), int64(frac*1e9))
	return &t, nil
}

// jsonString decodes a JSON string, without the reflection of
// json.Unmarshal when it holds no escapes.
func jsonString(v json.RawMessage) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 && bytes.IndexByte(inner, '"') < 0 {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// stringOrList reads a string or a list of strings (aud, the rooms claim).
// With dedupe, empty strings and repeats are dropped.
func stringOrList(v json.RawMessage, dedupe bool) ([]string, bool) {
	if len(v) > 0 && v[0] == '"' {
		s, ok := jsonString(v)
		if !ok {
			return nil, false
		}
		if s == "" && dedupe {
			return nil, true
		}
		return []string{s}, true
	}
	if len(v) == 0 || v[0] != '[' {
		return nil, false
	}
	var list []json.RawMessage
	if json.Unmarshal(v, &list) != nil {
		return nil, false
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := jsonString(e)
		if !ok {
			return nil, false
		}
		if dedupe && (s == "" || slices.Contains(out, s)) {
			continue
		}
		out = append(out, s)
	}
	return out, true
}

// The jwt.Claims interface: the parser requires it (its own claim
// validation is off; Authenticate checks the fields directly).
func (c *claims) GetExpirationTime() (*jwt.NumericDate, error) { return numericOf(c.exp), nil }
func (c *claims) GetNotBefore() (*jwt.NumericDate, error)      { return numericOf(c.nbf), nil }
func (c *claims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (c *claims) GetIssuer() (string, error)                   { return c.iss, nil }
func (c *claims) GetSubject() (string, error) {
	s, _ := jsonString(c.raw["sub"])
	return s, nil
}
func (c *claims) GetAudience() (jwt.ClaimStrings, error) { return c.aud, nil }

func numericOf(t *time.Time) *jwt.NumericDate {
	if t == nil {
		return nil
	}
	return jwt.NewNumericDate(*t)
}
