package config

import (
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// schema describes one block type's body. Required attributes are checked here rather than by
// HCL, so that a missing one is reported at the block's header, naming the block.
type schema struct {
	attrs    []string
	required []string
	blocks   []string
	secret   []string // attributes whose evaluation errors must not be quoted
}

func (sc schema) body() *hcl.BodySchema {
	body := &hcl.BodySchema{}
	for _, name := range sc.attrs {
		body.Attributes = append(body.Attributes, hcl.AttributeSchema{Name: name})
	}
	for _, name := range sc.blocks {
		body.Blocks = append(body.Blocks, hcl.BlockHeaderSchema{Type: name})
	}
	return body
}

// section is one block's body, opened against its schema, with typed getters. A getter
// reports every problem with its value and returns ok only for a valid, non-null value; null
// means "not set", as is usual in HCL.
type section struct {
	d      *decoder
	sc     schema
	what   string    // the block in messages, e.g. `source "in"`
	def    hcl.Range // where problems of the block as a whole are reported
	attrs  hcl.Attributes
	blocks hcl.Blocks
}

func (d *decoder) open(body hcl.Body, sc schema, what string, def hcl.Range) *section {
	content, diags := body.Content(sc.body())
	d.add(diags)
	s := &section{d: d, sc: sc, what: what, def: def, attrs: content.Attributes, blocks: content.Blocks}
	for _, name := range sc.required {
		if _, ok := s.attrs[name]; !ok {
			d.errorf(def, "Missing required argument", "The argument %q is required in %s.", name, what)
		}
	}
	return s
}

// has returns the whole attribute's range when it is present.
func (s *section) has(name string) (hcl.Range, bool) {
	if a := s.attrs[name]; a != nil {
		return a.Range, true
	}
	return s.def, false
}

// nested returns the blocks of one type, reporting all but the first as duplicates.
func (s *section) nested(blockType string) *hcl.Block {
	var first *hcl.Block
	for _, b := range s.blocks {
		if b.Type == blockType {
			s.d.single(b, &first)
		}
	}
	return first
}

// eval evaluates an attribute; rng is the value's range, or the block's when absent.
func (s *section) eval(name string) (value cty.Value, rng hcl.Range, ok bool) {
	a := s.attrs[name]
	if a == nil {
		return cty.NilVal, s.def, false
	}
	rng = a.Expr.Range()
	value, diags := s.d.evalExpr(a.Expr, name, slices.Contains(s.sc.secret, name))
	s.d.add(diags)
	switch {
	case diags.HasErrors():
		return cty.NilVal, rng, false
	case value.IsNull():
		if slices.Contains(s.sc.required, name) {
			s.d.errorf(rng, "Invalid value", "The argument %q is required in %s and must not be null.", name, s.what)
		}
		return cty.NilVal, rng, false
	case !value.IsWhollyKnown():
		s.d.errorf(rng, "Invalid value", "The value of %q must be known when the configuration is loaded.", name)
		return cty.NilVal, rng, false
	}
	return value, rng, true
}

// typed evaluates an attribute and converts it to ty.
func (s *section) typed(name string, ty cty.Type) (cty.Value, hcl.Range, bool) {
	value, rng, ok := s.eval(name)
	if !ok {
		return cty.NilVal, rng, false
	}
	converted, err := convert.Convert(value, ty)
	if err != nil {
		s.d.errorf(rng, "Incorrect attribute value type", "Inappropriate value for attribute %q: %s.", name, err)
		return cty.NilVal, rng, false
	}
	return converted, rng, true
}

// str sets *dst to a string attribute's value.
func (s *section) str(name string, dst *string) (hcl.Range, bool) {
	value, rng, ok := s.typed(name, cty.String)
	if ok {
		*dst = value.AsString()
	}
	return rng, ok
}

// nonEmpty sets *dst to a string attribute's value, which must not be "".
func (s *section) nonEmpty(name string, dst *string) (hcl.Range, bool) {
	var value string
	rng, ok := s.str(name, &value)
	if ok && value == "" {
		s.d.errorf(rng, "Invalid value", "%s must not be empty.", name)
		return rng, false
	}
	if ok {
		*dst = value
	}
	return rng, ok
}

// oneOf sets *dst to a string attribute that must be one of allowed.
func (s *section) oneOf(name string, dst *string, allowed ...string) (hcl.Range, bool) {
	var value string
	rng, ok := s.str(name, &value)
	if ok && !slices.Contains(allowed, value) {
		s.d.errorf(rng, "Invalid value", "%s must be one of %s; got %s.", name, strings.Join(allowed, ", "), quote(value))
		return rng, false
	}
	if ok {
		*dst = value
	}
	return rng, ok
}

// stringList sets *dst to a list of strings, non-nil even when empty, and returns each
// element's range: the element's own for a literal list, the whole value's otherwise. Invalid
// elements are reported and left out; ok is true only when there were none. When the value as a
// whole is invalid, *dst is left alone and ranges is nil.
func (s *section) stringList(name string, dst *[]string) ([]hcl.Range, bool) {
	a := s.attrs[name]
	if a == nil {
		return nil, false
	}
	elements, isLiteral := literalList(a.Expr)
	if !isLiteral {
		value, rng, ok := s.typed(name, cty.List(cty.String))
		if !ok {
			return nil, false
		}
		list, ranges, ok := []string{}, []hcl.Range{}, true
		for it := value.ElementIterator(); it.Next(); {
			_, element := it.Element()
			if element.IsNull() {
				s.d.errorf(rng, "Invalid value", "The elements of %q must not be null.", name)
				ok = false
				continue
			}
			list, ranges = append(list, element.AsString()), append(ranges, rng)
		}
		*dst = list
		return ranges, ok
	}
	list, ranges, ok := []string{}, []hcl.Range{}, true
	for _, expr := range elements {
		value, diags := s.d.evalExpr(expr, name, slices.Contains(s.sc.secret, name))
		s.d.add(diags)
		if diags.HasErrors() {
			ok = false
			continue
		}
		if value.IsNull() {
			s.d.errorf(expr.Range(), "Invalid value", "The elements of %q must not be null.", name)
			ok = false
			continue
		}
		converted, err := convert.Convert(value, cty.String)
		if err != nil || !converted.IsWhollyKnown() {
			s.d.errorf(expr.Range(), "Incorrect attribute value type", "The elements of %q must be strings.", name)
			ok = false
			continue
		}
		list, ranges = append(list, converted.AsString()), append(ranges, expr.Range())
	}
	*dst = list
	return ranges, ok
}
