package config

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// WriteDiagnostics prints diags to w, each as a "file:line:col: Error: summary"
// line followed by the source snippet and detail (hcl.NewDiagnosticTextWriter).
// files maps file names to their sources (only File.Bytes is used) and may be
// nil: missing files are read from disk by the diagnostic's file name. Use
// SourceFile to pass the source given to Parse.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	all := make(map[string]*hcl.File, len(files))
	for name, f := range files {
		all[name] = f
	}
	for _, diag := range diags {
		if diag.Subject == nil {
			continue
		}
		name := diag.Subject.Filename
		if _, ok := all[name]; ok || name == "" {
			continue
		}
		if src, err := os.ReadFile(name); err == nil {
			all[name] = sourceFile(name, src)
		} else {
			all[name] = nil
		}
	}
	sorted := make(hcl.Diagnostics, len(diags))
	copy(sorted, diags)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].Subject, sorted[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil // diagnostics without a position first
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
	diags = sorted
	var buf bytes.Buffer
	tw := hcl.NewDiagnosticTextWriter(&buf, all, 0, false)
	for _, diag := range diags {
		buf.Reset()
		if err := tw.WriteDiagnostic(diag); err != nil {
			return err
		}
		text := buf.String()
		if diag.Subject != nil {
			// "Error: summary\n\n" becomes "file:line:col: Error: summary\n".
			pos := fmt.Sprintf("%s:%d:%d: ", diag.Subject.Filename, diag.Subject.Start.Line, diag.Subject.Start.Column)
			text = pos + strings.Replace(text, "\n\n", "\n", 1)
		}
		if _, err := io.WriteString(w, text); err != nil {
			return err
		}
	}
	return nil
}

// SourceFile returns a files map for WriteDiagnostics holding src under filename.
func SourceFile(filename string, src []byte) map[string]*hcl.File {
	return map[string]*hcl.File{filename: sourceFile(filename, src)}
}

// sourceFile parses src so the text writer can name the enclosing block
// ("in server"); when it does not parse, the bytes alone still give snippets.
func sourceFile(filename string, src []byte) *hcl.File {
	if f, _ := hclsyntax.ParseConfig(src, filename, hcl.InitialPos); f != nil {
		return f
	}
	return &hcl.File{Bytes: src}
}
