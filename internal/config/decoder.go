package config

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Kinds of named blocks, as they appear in messages.
const (
	kindCluster = "cluster"
	kindSource  = "source"
	kindTarget  = "target"
	kindModule  = "module"
	kindRoute   = "route"
	kindTest    = "test"
)

// decoder holds what a whole-file decode accumulates: diagnostics, declared names, references
// to check once every block is known, and the secrets to keep out of diagnostics.
type decoder struct {
	file     string
	dir      string
	ctx      *hcl.EvalContext
	diags    hcl.Diagnostics
	errors   int                             // errors among diags
	declared map[string]map[string]hcl.Range // kind -> name -> first label
	refs     []reference
	secrets  []string
	read     []string // values computed from file() or env(): never quoted in a diagnostic
	attrs    map[string]hcl.Range
	// lookupEnv backs env() and the OTEL_* variables of the tracing block.
	lookupEnv func(string) (string, bool)
}

// reference is a name one block uses to point at another.
type reference struct {
	kind string    // what it must name
	name string    // the name used
	from string    // the block using it, e.g. `route "orders"`
	rng  hcl.Range // the attribute or list element
}

func newDecoder(filename string, lookupEnv func(string) (string, bool)) *decoder {
	dir := filepath.Dir(filename)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return &decoder{
		file:     filename,
		dir:      dir,
		ctx:      &hcl.EvalContext{Functions: functions(dir, lookupEnv)},
		declared: map[string]map[string]hcl.Range{},
		attrs:    map[string]hcl.Range{},

		lookupEnv: lookupEnv,
	}
}

// add collects diagnostics, counting the errors for errorsSince.
func (d *decoder) add(diags hcl.Diagnostics) {
	for _, diag := range diags {
		if diag.Severity == hcl.DiagError {
			d.errors++
		}
	}
	d.diags = append(d.diags, diags...)
}

func (d *decoder) report(severity hcl.DiagnosticSeverity, rng hcl.Range, summary, format string, args ...any) {
	d.add(hcl.Diagnostics{{
		Severity: severity,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	}})
}

func (d *decoder) errorf(rng hcl.Range, summary, format string, args ...any) {
	d.report(hcl.DiagError, rng, summary, format, args...)
}

func (d *decoder) warnf(rng hcl.Range, summary, format string, args ...any) {
	d.report(hcl.DiagWarning, rng, summary, format, args...)
}

// declare records a block's name, reporting an empty or duplicate one at its label. It returns
// false for a duplicate, which is then left out of the Config so lookups stay unambiguous.
func (d *decoder) declare(kind string, b *hcl.Block) bool {
	name, label := b.Labels[0], b.LabelRanges[0]
	if name == "" {
		d.errorf(label, "Invalid name", "A %s name must not be empty.", kind)
	}
	names := d.declared[kind]
	if names == nil {
		names = map[string]hcl.Range{}
		d.declared[kind] = names
	}
	if first, dup := names[name]; dup {
		d.errorf(label, "Duplicate name", "duplicate %s %q; first declared at %s:%d", kind, name, first.Filename, first.Start.Line)
		return false
	}
	names[name] = label
	return true
}

// single reports a second router or store block; only the first one counts.
func (d *decoder) single(b *hcl.Block, first **hcl.Block) bool {
	if *first != nil {
		d.errorf(b.DefRange, "Duplicate block", "duplicate %s block; first declared at %s:%d", b.Type, (*first).DefRange.Filename, (*first).DefRange.Start.Line)
		return false
	}
	*first = b
	return true
}

// ref records a reference, checked by checkReferences once every block is declared.
func (d *decoder) ref(kind, name, from string, rng hcl.Range) {
	d.refs = append(d.refs, reference{kind: kind, name: name, from: from, rng: rng})
}

// errorCount is a mark for errorsSince.
func (d *decoder) errorCount() int {
	return d.errors
}

// errorsSince tells whether errors were reported after mark. Warnings drawn from a block's
// values are left out when the block has errors: they would describe a value that is wrong.
func (d *decoder) errorsSince(mark int) bool {
	return d.errorCount() > mark
}

func (d *decoder) addSecret(secret string) {
	d.secrets = append(d.secrets, secret)
}

// markRead records the strings of a value computed from file() or env(), so that no diagnostic
// quotes them: such a value may be anything the process can read (a key, /etc/shadow).
func (d *decoder) markRead(value cty.Value) {
	if value.IsNull() || !value.IsWhollyKnown() {
		return
	}
	switch {
	case value.Type() == cty.String:
		d.read = append(d.read, value.AsString())
	case value.Type() == cty.Number:
		d.read = append(d.read, value.AsBigFloat().Text('g', 20))
	case value.CanIterateElements():
		for it := value.ElementIterator(); it.Next(); {
			_, element := it.Element()
			d.markRead(element)
		}
	}
}

// readsInput reports whether an expression calls file() or env().
func readsInput(expr hcl.Expression) bool {
	syntax, ok := expr.(hclsyntax.Expression)
	if !ok {
		return false
	}
	found := false
	_ = hclsyntax.VisitAll(syntax, func(node hclsyntax.Node) hcl.Diagnostics {
		if call, ok := node.(*hclsyntax.FunctionCallExpr); ok && (call.Name == "file" || call.Name == "env") {
			found = true
		}
		return nil
	})
	return found
}

// evalExpr evaluates an expression. When the expression reads a file or the environment, or
// the attribute is a secret, what HCL says about a failure is withheld (a function's error may
// quote its argument) and the value is kept out of later diagnostics.
func (d *decoder) evalExpr(expr hcl.Expression, attribute string, secret bool) (cty.Value, hcl.Diagnostics) {
	value, diags := expr.Value(d.ctx)
	reads := readsInput(expr)
	if secret || reads {
		withholdDetails(diags, attribute)
	}
	if reads && !diags.HasErrors() {
		d.markRead(value)
	}
	return value, diags
}

// checkReferences reports every reference to a name that no block declares.
func (d *decoder) checkReferences() {
	for _, r := range d.refs {
		names := d.declared[r.kind]
		if _, ok := names[r.name]; ok {
			continue
		}
		detail := fmt.Sprintf("%s refers to %s %q, which is not declared.", r.from, r.kind, r.name)
		if suggestion := closest(r.name, names); suggestion != "" {
			detail += fmt.Sprintf(" Did you mean %q?", suggestion)
		}
		d.errorf(r.rng, "Reference to undeclared "+r.kind, "%s", detail)
	}
}

// resolvePath makes a relative path relative to dir.
func resolvePath(dir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// closest suggests the declared name nearest to a misspelled one, or "".
func closest(name string, names map[string]hcl.Range) string {
	if len(name) > 64 {
		return "" // not a typo, and not worth quadratic work
	}
	candidates := make([]string, 0, len(names))
	for candidate := range names {
		candidates = append(candidates, candidate)
	}
	slices.Sort(candidates) // deterministic among equal distances
	best, bestDistance := "", 3
	for _, candidate := range candidates {
		if distance := levenshtein(name, candidate); distance < bestDistance {
			best, bestDistance = candidate, distance
		}
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	previous := make([]int, len(rb)+1)
	current := make([]int, len(rb)+1)
	for j := range previous {
		previous[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		current[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			current[j] = min(previous[j]+1, current[j-1]+1, previous[j-1]+cost)
		}
		previous, current = current, previous
	}
	return previous[len(rb)]
}
