package plugintest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

func TestLoopbackContract(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		plugintest.CheckContract(t, plugintest.NewLoopback(), plugintest.Options{Echo: true})
	})
	t.Run("in-process", func(t *testing.T) {
		p := plugintest.InProcess(t, plugintest.NewLoopback())
		plugintest.CheckContract(t, p, plugintest.Options{Echo: true, Config: sdk.Config(`{"buffer":8}`)})
	})
}

// tokenAuth allows the token "open-sesame".
type tokenAuth struct{}

func (tokenAuth) Info() sdk.Info {
	return sdk.Info{Kind: sdk.KindAuth, Name: "token", Version: "1.0.0", ProtocolVersion: sdk.ProtocolVersion}
}

func (tokenAuth) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{{Name: "token", Type: sdk.TypeString}}}
}

func (tokenAuth) Configure(context.Context, sdk.Config) error { return nil }

func (tokenAuth) Authenticate(_ context.Context, req *sdk.AuthRequest) (*sdk.AuthDecision, error) {
	if strings.Contains(string(req.Auth), `"open-sesame"`) {
		return &sdk.AuthDecision{Allow: true, UserID: "ali"}, nil
	}
	return &sdk.AuthDecision{Message: "no"}, nil
}

func TestCheckAuthInProcess(t *testing.T) {
	p := plugintest.InProcess(t, tokenAuth{})
	plugintest.CheckContract(t, p, plugintest.Options{})
	plugintest.CheckAuth(t, p.(sdk.Authenticator),
		plugintest.AuthCase{Name: "allowed", Request: sdk.AuthRequest{Namespace: "/", Auth: []byte(`{"token":"open-sesame"}`)}, Allow: true, UserID: "ali"},
		plugintest.AuthCase{Name: "refused", Request: sdk.AuthRequest{Namespace: "/", Auth: []byte(`{}`)}},
	)
}

// errRecorder collects Errorf calls instead of failing.
type errRecorder struct {
	testing.TB
	errs []string
}

func (r *errRecorder) Helper() {}

func (r *errRecorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestCheckSchemaReports(t *testing.T) {
	r := &errRecorder{TB: t}
	plugintest.CheckSchema(r, sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "ok_name-2", Type: sdk.TypeDuration},
		{Name: "ok_name-2", Type: sdk.TypeString},
		{Name: "2bad", Type: sdk.TypeBool},
		{Name: "", Type: sdk.TypeBool},
		{Name: "x", Type: "list(number)"},
	}})
	want := []string{"appears twice", `"2bad" is not an HCL identifier`, `"" is not an HCL identifier`, `unknown type "list(number)"`}
	if len(r.errs) != len(want) {
		t.Fatalf("got %d reports %q, want %d", len(r.errs), r.errs, len(want))
	}
	for i, w := range want {
		if !strings.Contains(r.errs[i], w) {
			t.Errorf("report %d = %q, want it to say %q", i, r.errs[i], w)
		}
	}
}

// runChild runs the test binary's test name with PLUGINTEST_CHILD=mode,
// expects it to fail and returns its output.
func runChild(t *testing.T, name, mode string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.v")
	cmd.Env = append(os.Environ(), "PLUGINTEST_CHILD="+mode, "CI=")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the child test passed, want it to fail:\n%s", out)
	}
	return string(out)
}

// TestCheckAuthDiff: a decision that differs from the case in Message,
// Rooms or Data fails with a diff naming each field.
func TestCheckAuthDiff(t *testing.T) {
	if os.Getenv("PLUGINTEST_CHILD") == "auth" {
		p := plugintest.InProcess(t, richAuth{})
		plugintest.CheckAuth(t, p.(sdk.Authenticator),
			plugintest.AuthCase{Name: "allowed", Request: sdk.AuthRequest{Namespace: "/", Auth: []byte(`{"token":"open-sesame"}`)},
				Allow: true, UserID: "ali", Rooms: []string{"lobby"}, Data: json.RawMessage(`{"role":"admin","team":"red"}`)},
			plugintest.AuthCase{Name: "refused", Request: sdk.AuthRequest{Namespace: "/", Auth: []byte(`{}`)}, Message: "invalid token"},
		)
		return
	}
	out := runChild(t, "TestCheckAuthDiff", "auth")
	for _, want := range []string{
		"Rooms (in any order):\n",
		`got  ["team-red" "lobby"]`,
		`want ["lobby"]`,
		`"role": got "user", want "admin"`,
		`"team": missing, want "red"`,
		`"level": got 3, not wanted`,
		"Message:\n",
		`got  "no token"`,
		`want "invalid token"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the failure does not say %q:\n%s", want, out)
		}
	}
}

// richAuth allows "open-sesame" with rooms and data.
type richAuth struct{ tokenAuth }

func (richAuth) Authenticate(_ context.Context, req *sdk.AuthRequest) (*sdk.AuthDecision, error) {
	if strings.Contains(string(req.Auth), `"open-sesame"`) {
		return &sdk.AuthDecision{Allow: true, UserID: "ali", Rooms: []string{"team-red", "lobby"}, Data: json.RawMessage(`{"role":"user","level":3}`)}, nil
	}
	return &sdk.AuthDecision{Message: "no token"}, nil
}

func TestCheckAuthExpected(t *testing.T) {
	p := plugintest.InProcess(t, richAuth{})
	plugintest.CheckAuth(t, p.(sdk.Authenticator),
		plugintest.AuthCase{Name: "allowed", Request: sdk.AuthRequest{Namespace: "/", Auth: []byte(`{"token":"open-sesame"}`)},
			Allow: true, UserID: "ali", Rooms: []string{"lobby", "team-red"}, Data: json.RawMessage(`{"level":3, "role":"user"}`)},
		plugintest.AuthCase{Name: "refused", Request: sdk.AuthRequest{Namespace: "/", Auth: []byte(`{}`)}, Message: "no token", Rooms: []string{}, Data: json.RawMessage(`{}`)},
	)
}
