package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// EvalStrings evaluates a room expression (RoomAction.Room, Broadcast.To):
// a string (numbers and bools are converted) or a list/tuple/set of them.
// Empty names and nulls are errors.
func EvalStrings(expr hcl.Expression, ctx *hcl.EvalContext) ([]string, hcl.Diagnostics) {
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	fail := func(msg string) ([]string, hcl.Diagnostics) {
		return nil, append(diags, &hcl.Diagnostic{
			Severity:    hcl.DiagError,
			Summary:     "Invalid room name",
			Detail:      msg,
			Subject:     expr.Range().Ptr(),
			Expression:  expr,
			EvalContext: ctx,
		})
	}
	if !v.IsWhollyKnown() {
		return fail("The value is not known.")
	}
	if v.IsNull() {
		return fail("The room name is null.")
	}
	var elems []cty.Value
	ty := v.Type()
	switch {
	case ty.IsPrimitiveType():
		elems = []cty.Value{v}
	case ty.IsListType() || ty.IsSetType() || ty.IsTupleType():
		elems = v.AsValueSlice()
	default:
		return fail(fmt.Sprintf("A room name must be a string or a list of strings, not %s.", ty.FriendlyName()))
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		if e.IsNull() || !e.Type().IsPrimitiveType() {
			return fail("A room name must be a string or a list of strings.")
		}
		s, err := convert.Convert(e, cty.String)
		if err != nil || s.AsString() == "" {
			return fail("Room names must not be empty.")
		}
		out = append(out, s.AsString())
	}
	return out, diags
}

// EvalString evaluates an expression that must produce one string (numbers
// and bools are converted).
func EvalString(expr hcl.Expression, ctx *hcl.EvalContext) (string, hcl.Diagnostics) {
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return "", diags
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil || s.IsNull() || !s.IsKnown() {
		return "", append(diags, &hcl.Diagnostic{
			Severity:    hcl.DiagError,
			Summary:     "Invalid value",
			Detail:      "A string is required.",
			Subject:     expr.Range().Ptr(),
			Expression:  expr,
			EvalContext: ctx,
		})
	}
	return s.AsString(), diags
}

// Eval evaluates non-passthrough Args into the argument values to send.
// It must not be called when a.Passthrough is true.
func (a Args) Eval(ctx *hcl.EvalContext) ([]cty.Value, hcl.Diagnostics) {
	if a.Passthrough || a.Expr == nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Passthrough arguments cannot be evaluated"}}
	}
	v, diags := a.Expr.Value(ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	ty := v.Type()
	if v.IsNull() || !v.IsWhollyKnown() || !(ty.IsTupleType() || ty.IsListType() || ty.IsSetType()) {
		return nil, append(diags, &hcl.Diagnostic{
			Severity:    hcl.DiagError,
			Summary:     "Invalid arguments",
			Detail:      "The arguments must be a list, e.g. [auth].",
			Subject:     a.Expr.Range().Ptr(),
			Expression:  a.Expr,
			EvalContext: ctx,
		})
	}
	return v.AsValueSlice(), diags
}

// MaxJSONDepth bounds the nesting of JSON that event rules read (event
// arguments, the CONNECT auth object, the socket's data): converting JSON
// to cty costs time and memory that grow with the square of its depth (a
// 14 KB argument nested 7,000 deep took 2.8 s and 750 MB), so deeper
// values are refused before any conversion.
const MaxJSONDepth = 32

// ErrTooDeep is returned for JSON nested deeper than MaxJSONDepth.
var ErrTooDeep = fmt.Errorf("JSON nested deeper than %d levels", MaxJSONDepth)

// ValueFromJSON converts one JSON value to cty: objects become objects,
// arrays tuples, numbers cty.Number, null a null of DynamicPseudoType.
// JSON nested deeper than MaxJSONDepth is refused with ErrTooDeep.
func ValueFromJSON(data []byte) (cty.Value, error) {
	if jsonDepthExceeds(data, MaxJSONDepth) {
		return cty.NilVal, ErrTooDeep
	}
	ty, err := ctyjson.ImpliedType(data)
	if err != nil {
		return cty.NilVal, err
	}
	return ctyjson.Unmarshal(data, ty)
}

// jsonDepthExceeds reports whether data nests arrays and objects deeper
// than max. One pass over the bytes, no allocation; it does not validate
// (the conversion that follows does).
func jsonDepthExceeds(data []byte, max int) bool {
	depth, inString := 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++ // skip the escaped byte
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			if depth++; depth > max {
				return true
			}
		case ']', '}':
			depth--
		}
	}
	return false
}

// ValueToJSON encodes a cty value as plain JSON (objects and maps as JSON
// objects with sorted keys, lists/tuples/sets as arrays, null as null).
func ValueToJSON(v cty.Value) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeJSON(buf *bytes.Buffer, v cty.Value) error {
	if !v.IsKnown() {
		return fmt.Errorf("cannot encode an unknown value as JSON")
	}
	if v.IsNull() {
		buf.WriteString("null")
		return nil
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		writeJSONString(buf, v.AsString())
	case ty == cty.Number:
		f := v.AsBigFloat()
		if f.IsInf() {
			return fmt.Errorf("cannot encode an infinite number as JSON")
		}
		buf.WriteString(f.Text('f', -1))
	case ty == cty.Bool:
		if v.True() {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case ty.IsListType() || ty.IsSetType() || ty.IsTupleType():
		buf.WriteByte('[')
		for i, e := range v.AsValueSlice() {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case ty.IsObjectType() || ty.IsMapType():
		m := v.AsValueMap()
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeJSONString(buf, k)
			buf.WriteByte(':')
			if err := writeJSON(buf, m[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("cannot encode %s as JSON", ty.FriendlyName())
	}
	return nil
}

// writeJSONString writes s as a JSON string without HTML escaping (like
// JavaScript's JSON.stringify).
func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // strings always encode
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
}
