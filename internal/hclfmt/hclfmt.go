// Package hclfmt puts HCL files in canonical form (the layout `terraform fmt` gives: two-space
// indentation, aligned equals signs, normalised spacing), keeping comments, and shows what it
// would change as a unified diff. It is what `router fmt` runs.
package hclfmt

import (
	"bytes"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Format returns src in canonical form. A file that does not parse is not touched: formatting
// a broken file could move its errors, so its diagnostics come back instead.
func Format(src []byte, filename string) ([]byte, hcl.Diagnostics) {
	if _, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos); diags.HasErrors() {
		return nil, diags
	}
	out := hclwrite.Format(src)
	// hclwrite keeps blank lines as written; a canonical file ends with exactly one newline
	// and has no trailing blank lines, so that fmt twice is fmt once.
	out = bytes.TrimRight(out, "\n")
	if len(out) > 0 {
		out = append(out, '\n')
	}
	return out, nil
}
