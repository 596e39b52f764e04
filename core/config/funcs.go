package config

import (
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Names of the variables runtime expressions may reference.
const (
	// VarAuth is the CONNECT payload object ({} when the client sent none).
	VarAuth = "auth"
	// VarQuery is the handshake query parameters, a map of string.
	VarQuery = "query"
	// VarHeaders is the handshake request headers with lower-case names, a map of string.
	VarHeaders = "headers"
	// VarSocket is {id = string, namespace = string}.
	VarSocket = "socket"
	// VarArgs is the event's arguments, a tuple/list; binary attachments
	// appear as {"_placeholder" = true, "num" = N}. Only in event rules.
	VarArgs = "args"
	// VarUser is the user id the auth plugin established ("" without auth).
	VarUser = "user"
	// VarData is the object the auth plugin attached to the socket ({}
	// without auth), e.g. selected JWT claims.
	VarData = "data"
)

// ConnectVariables are the root variables on_connect expressions may use.
var ConnectVariables = []string{VarAuth, VarQuery, VarHeaders, VarSocket, VarUser, VarData}

// EventVariables are the root variables event-rule expressions may use.
var EventVariables = []string{VarAuth, VarQuery, VarHeaders, VarSocket, VarUser, VarData, VarArgs}

// ServerEventVariables are the root variables server_event expressions may
// use: a server-side emit has no socket.
var ServerEventVariables = []string{VarArgs}

// EnvFunc is env(NAME) / env(NAME, DEFAULT): the value of an environment
// variable. An unset or empty variable yields DEFAULT, or an error when no
// default is given.
var EnvFunc = function.New(&function.Spec{
	Description: "Returns the value of an environment variable, or the default when it is unset or empty.",
	Params: []function.Parameter{
		{Name: "name", Type: cty.String},
	},
	VarParam: &function.Parameter{Name: "default", Type: cty.String},
	Type:     function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if len(args) > 2 {
			return cty.NilVal, function.NewArgErrorf(2, "env takes a name and at most one default value")
		}
		name := args[0].AsString()
		if v, ok := os.LookupEnv(name); ok && v != "" {
			return cty.StringVal(v), nil
		}
		if len(args) == 2 {
			return args[1], nil
		}
		return cty.NilVal, function.NewArgErrorf(0, "environment variable %q is not set and no default was given; write env(%q, \"default\") to provide one", name, name)
	},
})

var functions = map[string]function.Function{
	"env":       EnvFunc,
	"try":       tryfunc.TryFunc,
	"can":       tryfunc.CanFunc,
	"lower":     stdlib.LowerFunc,
	"upper":     stdlib.UpperFunc,
	"format":    stdlib.FormatFunc,
	"join":      stdlib.JoinFunc,
	"split":     stdlib.SplitFunc,
	"replace":   stdlib.ReplaceFunc,
	"trimspace": stdlib.TrimSpaceFunc,
	"substr":    stdlib.SubstrFunc,
	"concat":    stdlib.ConcatFunc,
	"contains":  stdlib.ContainsFunc,
	"length":    stdlib.LengthFunc,
	"coalesce":  stdlib.CoalesceFunc,
	"tostring":  stdlib.MakeToFunc(cty.String),
	"tonumber":  stdlib.MakeToFunc(cty.Number),
	"tobool":    stdlib.MakeToFunc(cty.Bool),
}

// RuntimeFunctions returns (a fresh copy of) the functions available in
// config.hcl: env, try, can, lower, upper, format, join, split, replace,
// trimspace, substr, concat, contains, length, coalesce, tostring, tonumber,
// tobool. The same set is used at load time and per event.
func RuntimeFunctions() map[string]function.Function {
	m := make(map[string]function.Function, len(functions))
	for k, v := range functions {
		m[k] = v
	}
	return m
}

// NewEvalContext returns an evaluation context with the runtime functions and
// the given variables. It shares one read-only function table, so it is cheap
// and safe to call per event (or build one parent and use NewChild per event).
func NewEvalContext(vars map[string]cty.Value) *hcl.EvalContext {
	return &hcl.EvalContext{Variables: vars, Functions: functions}
}

// Scope is the per-socket / per-event data runtime expressions see.
type Scope struct {
	Auth      cty.Value         // CONNECT payload object; cty.NilVal or null = {}
	Query     map[string]string // handshake query parameters
	Headers   map[string]string // handshake headers, lower-case names
	SocketID  string
	Namespace string
	User      string    // the authenticated user id, "" without auth
	Data      cty.Value // the auth plugin's data object; cty.NilVal or null = {}
	Args      cty.Value // event arguments (tuple); cty.NilVal outside event rules
}

// Variables returns the variable map for an hcl.EvalContext.
func (s *Scope) Variables() map[string]cty.Value {
	auth := s.Auth
	if auth == cty.NilVal || auth.IsNull() {
		auth = cty.EmptyObjectVal
	}
	data := s.Data
	if data == cty.NilVal || data.IsNull() {
		data = cty.EmptyObjectVal
	}
	vars := map[string]cty.Value{
		VarUser:    cty.StringVal(s.User),
		VarData:    data,
		VarAuth:    auth,
		VarQuery:   stringMap(s.Query),
		VarHeaders: stringMap(s.Headers),
		VarSocket: cty.ObjectVal(map[string]cty.Value{
			"id":        cty.StringVal(s.SocketID),
			"namespace": cty.StringVal(s.Namespace),
		}),
	}
	if s.Args != cty.NilVal {
		vars[VarArgs] = s.Args
	}
	return vars
}

// EvalContext is NewEvalContext(s.Variables()).
func (s *Scope) EvalContext() *hcl.EvalContext { return NewEvalContext(s.Variables()) }

func stringMap(m map[string]string) cty.Value {
	if len(m) == 0 {
		return cty.MapValEmpty(cty.String)
	}
	vm := make(map[string]cty.Value, len(m))
	for k, v := range m {
		vm[k] = cty.StringVal(v)
	}
	return cty.MapVal(vm)
}

// validationVariables stands in for the runtime variables at load time:
// unknown values of the right shape, so that expressions type-check without
// real data.
func validationVariables(allowed []string) map[string]cty.Value {
	vars := make(map[string]cty.Value, len(allowed))
	for _, name := range allowed {
		switch name {
		case VarQuery, VarHeaders:
			vars[name] = cty.UnknownVal(cty.Map(cty.String))
		case VarUser:
			vars[name] = cty.UnknownVal(cty.String)
		case VarSocket:
			vars[name] = cty.ObjectVal(map[string]cty.Value{
				"id":        cty.UnknownVal(cty.String),
				"namespace": cty.UnknownVal(cty.String),
			})
		default:
			vars[name] = cty.DynamicVal
		}
	}
	return vars
}
