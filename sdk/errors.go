package sdk

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// PluginError is an error that crossed the plugin boundary: what the host's
// client side returns when a plugin call fails, carrying the plugin's own
// message. Use errors.As to get at it, status.Code(err) for the gRPC code
// (Unavailable when the plugin process cannot be reached), and errors.Is
// with context.Canceled or context.DeadlineExceeded for cancellations.
type PluginError struct {
	Kind    Kind   // the plugin's kind
	Method  string // the call that failed, e.g. "Authenticate"
	Message string // the plugin's message (or the transport's)
	code    codes.Code
}

// Error reports kind, method and message: "auth plugin: Authenticate: token expired".
func (e *PluginError) Error() string {
	return fmt.Sprintf("%s plugin: %s: %s", e.Kind, e.Method, e.Message)
}

// GRPCStatus makes status.Code and status.FromError see the original code.
func (e *PluginError) GRPCStatus() *status.Status { return status.New(e.code, e.Message) }

// Unwrap returns context.Canceled or context.DeadlineExceeded when the call
// ended that way, nil otherwise.
func (e *PluginError) Unwrap() error {
	switch e.code {
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	}
	return nil
}

// toStatus turns a plugin implementation's error into a gRPC status error
// (server side). A status error, even wrapped, keeps its code; context
// errors become Canceled / DeadlineExceeded; anything else is Unknown with
// the error's text as message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// fromStatus turns an error returned by a generated client into a
// *PluginError (client side).
func fromStatus(kind Kind, method string, err error) error {
	if err == nil {
		return nil
	}
	st, _ := status.FromError(err) // a non-status error becomes Unknown with its text
	return &PluginError{Kind: kind, Method: method, Message: st.Message(), code: st.Code()}
}
