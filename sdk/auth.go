// The auth kind: one call per Socket.IO CONNECT, before the socket exists.

package sdk

import (
	"context"
	"encoding/json"
)

// AuthRequest is what the core knows about a connecting socket.
type AuthRequest struct {
	Namespace  string
	Auth       json.RawMessage   // the CONNECT payload, a JSON object ({} when none)
	Headers    map[string]string // handshake headers, lower-case names
	Query      map[string]string // handshake query parameters
	RemoteAddr string
}

// AuthDecision is the plugin's answer. A refusal is an AuthDecision with Allow false
// (the client gets CONNECT_ERROR with Message and ErrorData); a Go error
// means the plugin could not decide, and the core refuses with
// "authentication unavailable".
type AuthDecision struct {
	Allow     bool
	UserID    string
	Rooms     []string        // rooms the socket joins at connect
	Data      json.RawMessage // a JSON object; event rules see it as `data`
	Message   string          // refusal message
	ErrorData json.RawMessage // optional CONNECT_ERROR data
	// RedactAuth names top-level fields of the CONNECT payload (secrets such
	// as the token) that the socket does not keep: event rules, the backend
	// API and fetchSockets from other instances see the payload without them.
	RedactAuth []string
}

// Authenticator is an auth plugin.
type Authenticator interface {
	Plugin
	Authenticate(ctx context.Context, req *AuthRequest) (*AuthDecision, error)
}
