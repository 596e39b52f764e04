package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// ---- runtime expressions ----

// typeCheck validates the (possibly unknown) value a runtime expression
// produced at load time; it returns a problem description or "".
type typeCheck func(v cty.Value) string

func checkString(v cty.Value) string {
	if v.IsNull() {
		return "must not be null"
	}
	if !v.Type().IsPrimitiveType() && v.Type() != cty.DynamicPseudoType {
		return "must be a string"
	}
	return ""
}

func checkRooms(v cty.Value) string {
	ty := v.Type()
	if v.IsNull() {
		return "must be a room name or a list of room names, not null"
	}
	switch {
	case ty == cty.DynamicPseudoType:
		return ""
	case ty.IsPrimitiveType():
		if v.IsKnown() {
			if s, err := convert.Convert(v, cty.String); err == nil && s.AsString() == "" {
				return "must not be an empty room name"
			}
		}
		return ""
	case ty.IsListType() || ty.IsSetType():
		if et := ty.ElementType(); et.IsPrimitiveType() || et == cty.DynamicPseudoType {
			return ""
		}
	case ty.IsTupleType():
		for _, et := range ty.TupleElementTypes() {
			if !et.IsPrimitiveType() && et != cty.DynamicPseudoType {
				return "must be a room name or a list of room names"
			}
		}
		return ""
	}
	return "must be a room name or a list of room names"
}

// checkValue accepts any value: an acknowledgement may be anything JSON
// can say, null included.
func checkValue(cty.Value) string { return "" }

func checkArgs(v cty.Value) string {
	ty := v.Type()
	if v.IsNull() {
		return "must be a list of arguments, not null"
	}
	if ty == cty.DynamicPseudoType || ty.IsTupleType() || ty.IsListType() || ty.IsSetType() {
		return ""
	}
	return "must be a list of arguments, e.g. [auth] or [{ok = true}]"
}

// runtime validates an expression that is evaluated per event: only the
// allowed variables and known functions, and a type check against a stand-in
// evaluation. Expressions without variables are evaluated now and returned as
// static expressions.
func (d *decoder) runtime(expr hcl.Expression, context hcl.Range, where string, allowed []string, check typeCheck) hcl.Expression {
	bad := false
	for _, tr := range expr.Variables() {
		if d.rule != nil { // the router builds only the variables a rule reads
			if tr.RootName() == VarArgs {
				d.rule.ReadsArgs = true
			} else {
				d.rule.ReadsScope = true
			}
		}
		if !contains(allowed, tr.RootName()) {
			d.errorf(tr.SourceRange().Ptr(), context.Ptr(), "Unknown variable",
				"There is no variable named %q in %s; available: %s.", tr.RootName(), where, strings.Join(allowed, ", "))
			bad = true
		}
	}
	if se, ok := expr.(hclsyntax.Expression); ok {
		diags := hclsyntax.VisitAll(se, func(n hclsyntax.Node) hcl.Diagnostics {
			if fc, ok := n.(*hclsyntax.FunctionCallExpr); ok {
				if _, known := functions[fc.Name]; !known {
					names := make([]string, 0, len(functions))
					for k := range functions {
						names = append(names, k)
					}
					sort.Strings(names)
					return hcl.Diagnostics{{
						Severity: hcl.DiagError,
						Summary:  "Call to unknown function",
						Detail:   fmt.Sprintf("There is no function named %q; available: %s.", fc.Name, strings.Join(names, ", ")),
						Subject:  fc.NameRange.Ptr(),
						Context:  context.Ptr(),
					}}
				}
			}
			return nil
		})
		d.diags = append(d.diags, diags...)
		bad = bad || diags.HasErrors()
	}
	if bad {
		return expr
	}
	constant := len(expr.Variables()) == 0
	v, diags := expr.Value(NewEvalContext(validationVariables(allowed)))
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return expr
	}
	if msg := check(v); msg != "" {
		d.errorf(expr.Range().Ptr(), context.Ptr(), "Invalid value", "This expression %s.", msg)
		return expr
	}
	if constant && v.IsWhollyKnown() {
		return hcl.StaticExpr(v, expr.Range())
	}
	return expr
}
