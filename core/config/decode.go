package config

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// decoder turns HCL bodies into Config values; every problem becomes a
// diagnostic at its position (file:line:col).
type decoder struct {
	ctx   *hcl.EvalContext // load time: functions, no variables
	diags hcl.Diagnostics
	rule  *EventRule // the event rule being decoded, or nil
}

func (d *decoder) errorf(subject *hcl.Range, context *hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  subject,
		Context:  context,
	})
}

// attrError reports a problem with an attribute's value.
func (d *decoder) attrError(attr *hcl.Attribute, summary, format string, args ...any) {
	d.errorf(attr.Expr.Range().Ptr(), attr.Range.Ptr(), summary, format, args...)
}

func (d *decoder) content(body hcl.Body, schema *hcl.BodySchema) *hcl.BodyContent {
	c, diags := body.Content(schema)
	d.diags = append(d.diags, diags...)
	return c
}

// single returns the first block of a type, reporting any further ones.
func (d *decoder) single(blocks hcl.Blocks, typ, parent string) *hcl.Block {
	var first *hcl.Block
	for _, b := range blocks {
		if b.Type != typ {
			continue
		}
		if first == nil {
			first = b
			continue
		}
		d.errorf(b.DefRange.Ptr(), nil, "Duplicate "+typ+" block",
			"Only one %s block is allowed in %s; the first one is at %s.", typ, parent, rangeStart(first.DefRange))
	}
	return first
}

func rangeStart(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// ---- static (load-time) values ----

// value evaluates attr with the load-time context and converts it to ty. ok is
// false on errors and for null (null means "use the default").
func (d *decoder) value(attr *hcl.Attribute, ty cty.Type, what string) (cty.Value, bool) {
	if attr == nil {
		return cty.NilVal, false
	}
	v, diags := attr.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return cty.NilVal, false
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		d.attrError(attr, "Incorrect attribute value type", "Inappropriate value for attribute %q: %s required.", attr.Name, what)
		return cty.NilVal, false
	}
	if !cv.IsWhollyKnown() {
		d.attrError(attr, "Invalid attribute value", "The value of %q must be known when the config is loaded.", attr.Name)
		return cty.NilVal, false
	}
	return cv, true
}

func (d *decoder) str(attr *hcl.Attribute, dst *string) bool {
	v, ok := d.value(attr, cty.String, "string")
	if ok {
		*dst = v.AsString()
	}
	return ok
}

func (d *decoder) boolean(attr *hcl.Attribute, dst *bool) {
	if v, ok := d.value(attr, cty.Bool, "bool"); ok {
		*dst = v.True()
	}
}

func (d *decoder) strList(attr *hcl.Attribute, dst *[]string) bool {
	v, ok := d.value(attr, cty.List(cty.String), "list of strings")
	if !ok {
		return false
	}
	out := make([]string, 0, v.LengthInt())
	for _, e := range v.AsValueSlice() {
		if e.IsNull() {
			d.attrError(attr, "Invalid attribute value", "The list %q must not contain null.", attr.Name)
			return false
		}
		out = append(out, e.AsString())
	}
	*dst = out
	return true
}

func (d *decoder) integer(attr *hcl.Attribute, dst *int, min int) {
	v, ok := d.value(attr, cty.Number, "number")
	if !ok {
		return
	}
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	if !bf.IsInt() || acc != 0 || n > math.MaxInt32 {
		d.attrError(attr, "Invalid attribute value", "%q must be a whole number.", attr.Name)
		return
	}
	if n < int64(min) {
		d.attrError(attr, "Invalid attribute value", "%q must be at least %d; got %d.", attr.Name, min, n)
		return
	}
	*dst = int(n)
}

// duration parses a duration string; positive requires > 0, else >= 0.
func (d *decoder) duration(attr *hcl.Attribute, dst *time.Duration, positive bool) {
	var s string
	if !d.str(attr, &s) {
		return
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		d.attrError(attr, "Invalid duration", "%q is not a duration; use a number with a unit, such as \"300ms\", \"25s\" or \"1m30s\".", s)
		return
	}
	if positive && v <= 0 {
		d.attrError(attr, "Invalid duration", "%q must be greater than zero; got %q.", attr.Name, s)
		return
	}
	if v < 0 {
		d.attrError(attr, "Invalid duration", "%q must not be negative; got %q.", attr.Name, s)
		return
	}
	*dst = v
}

// size parses a byte size given as a number or a string with a unit; it must be > 0.
func (d *decoder) size(attr *hcl.Attribute, dst *int64) {
	if attr == nil {
		return
	}
	v, diags := attr.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return
	}
	var s string
	switch {
	case v.Type() == cty.Number && v.IsKnown():
		s = v.AsBigFloat().Text('f', -1)
	case v.Type() == cty.String && v.IsKnown():
		s = v.AsString()
	default:
		d.attrError(attr, "Incorrect attribute value type", "Inappropriate value for attribute %q: a size is required, as a number of bytes or a string such as \"16KB\" or \"1MiB\".", attr.Name)
		return
	}
	n, err := ParseSize(s)
	if err != nil {
		d.attrError(attr, "Invalid size", "%s", err)
		return
	}
	if n <= 0 {
		d.attrError(attr, "Invalid size", "%q must be greater than zero.", attr.Name)
		return
	}
	*dst = n
}

// oneOf checks that *dst (already decoded from attr) is one of the choices.
func (d *decoder) oneOf(attr *hcl.Attribute, val string, choices ...string) bool {
	for _, c := range choices {
		if val == c {
			return true
		}
	}
	d.attrError(attr, "Invalid attribute value", "%q must be one of %s; got %q.", attr.Name, quoteList(choices), val)
	return false
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

func contains(xs []string, x string) bool {
	for _, e := range xs {
		if e == x {
			return true
		}
	}
	return false
}

// elemRange is the range of element i of a list attribute written as a
// tuple, else the range of the whole value.
func elemRange(attr *hcl.Attribute, i int) hcl.Range {
	if elems, diags := hcl.ExprList(attr.Expr); !diags.HasErrors() && i < len(elems) {
		return elems[i].Range()
	}
	return attr.Expr.Range()
}
