// Package auth is the auth plugin kind: one call per Socket.IO CONNECT,
// before the socket exists.
package auth

import (
	"context"
	"encoding/json"

	"github.com/socketfleet/socketfleet/sdk"
)

// Request is what the core knows about a connecting socket.
type Request struct {
	Namespace  string
	Auth       json.RawMessage   // the CONNECT payload, a JSON object ({} when none)
	Headers    map[string]string // handshake headers, lower-case names
	Query      map[string]string // handshake query parameters
	RemoteAddr string
}

// Decision is the plugin's answer. A refusal is a Decision with Allow false
// (the client gets CONNECT_ERROR with Message and ErrorData); a Go error
// means the plugin could not decide, and the core refuses with
// "authentication unavailable".
type Decision struct {
	Allow     bool
	UserID    string
	Rooms     []string        // rooms the socket joins at connect
	Data      json.RawMessage // a JSON object; event rules see it as `data`
	Message   string          // refusal message
	ErrorData json.RawMessage // optional CONNECT_ERROR data
}

// Authenticator is an auth plugin.
type Authenticator interface {
	sdk.Plugin
	Authenticate(ctx context.Context, req *Request) (*Decision, error)
}
