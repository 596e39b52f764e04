package sdk

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
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
	// Attribute names the attribute of the plugin's block the error is
	// about, when the plugin said so with AttrError ("" otherwise). The
	// host then points at that attribute's file:line:col.
	Attribute string
	code      codes.Code
}

// Error reports kind, method, attribute and message:
// "auth plugin: Configure: keys_file: no such file".
func (e *PluginError) Error() string {
	if e.Attribute != "" {
		return fmt.Sprintf("%s plugin: %s: %s: %s", e.Kind, e.Method, e.Attribute, e.Message)
	}
	return fmt.Sprintf("%s plugin: %s: %s", e.Kind, e.Method, e.Message)
}

// AttributeError is an error about one attribute of a plugin's config
// block. Return it (or wrap it) from Configure, made with AttrError, and
// socket-server validate shows the message once, at that attribute's
// file:line:col with its source line, like the core's own diagnostics.
type AttributeError struct {
	Attribute string // the attribute's name in the block, e.g. "keys_file"
	Message   string // what is wrong, without the attribute's name
}

func (e *AttributeError) Error() string { return e.Attribute + ": " + e.Message }

// AttrError returns an *AttributeError about attribute attr:
//
//	return sdk.AttrError("keys_file", fmt.Sprintf("cannot read %s: %v", path, err))
func AttrError(attr, message string) error {
	return &AttributeError{Attribute: attr, Message: message}
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
	var ae *AttributeError
	if errors.As(err, &ae) {
		// The attribute travels as a standard BadRequest detail, so a
		// plugin in any language can send one.
		st := status.New(codes.InvalidArgument, ae.Message)
		if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: ae.Attribute, Description: ae.Message}}}); derr == nil {
			return d.Err()
		}
		return st.Err()
	}
	switch {
	case errors.Is(err, ErrUnsupported):
		// The host reads Unimplemented as ErrUnsupported again.
		return status.Error(codes.Unimplemented, err.Error())
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
	pe := &PluginError{Kind: kind, Method: method, Message: st.Message(), code: st.Code()}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			fv := br.GetFieldViolations()[0]
			pe.Attribute, pe.Message = fv.GetField(), fv.GetDescription()
			break
		}
	}
	return pe
}
