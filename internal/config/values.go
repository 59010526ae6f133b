package config

import (
	"math/big"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// maxNameLength is RabbitMQ's limit on routing keys and binding patterns (a shortstr).
const maxNameLength = 255

// integer sets *dst to a whole number within [lo, hi].
func (s *section) integer(name string, dst *int, lo, hi int) (hcl.Range, bool) {
	raw, rng, ok := s.eval(name)
	if !ok {
		return rng, false
	}
	if raw.Type() == cty.String && numberWithHugeExponent.MatchString(raw.AsString()) {
		s.d.errorf(rng, "Invalid value", "%s must be between %d and %d.", name, lo, hi)
		return rng, false
	}
	value, err := convert.Convert(raw, cty.Number)
	if err != nil {
		s.d.errorf(rng, "Incorrect attribute value type", "Inappropriate value for attribute %q: %s.", name, err)
		return rng, false
	}
	number := value.AsBigFloat()
	if !number.IsInt() {
		s.d.errorf(rng, "Invalid value", "%s must be a whole number; got %s.", name, number.Text('g', 10))
		return rng, false
	}
	if number.Cmp(big.NewFloat(float64(lo))) < 0 || number.Cmp(big.NewFloat(float64(hi))) > 0 {
		s.d.errorf(rng, "Invalid value", "%s must be between %d and %d; got %s.", name, lo, hi, number.Text('g', 20))
		return rng, false
	}
	n, _ := number.Int64()
	*dst = int(n)
	return rng, true
}

// duration sets *dst to a Go duration; negative ones are invalid, and so is zero when positive.
func (s *section) duration(name string, dst *time.Duration, positive bool) (hcl.Range, bool) {
	var text string
	rng, ok := s.str(name, &text)
	if !ok {
		return rng, false
	}
	d, err := ParseDuration(text)
	switch {
	case err != nil:
		s.d.errorf(rng, "Invalid duration", "%s must be a duration such as \"250ms\", \"1h\" or \"7d\"; got %s.", name, quote(text))
		return rng, false
	case d < 0:
		s.d.errorf(rng, "Invalid duration", "%s must not be negative; got %s.", name, quote(text))
		return rng, false
	case d == 0 && positive:
		s.d.errorf(rng, "Invalid duration", "%s must be greater than zero; got %s.", name, quote(text))
		return rng, false
	}
	*dst = d
	return rng, true
}

// size sets *dst to a byte size (see ParseSize) within [lo, hi].
func (s *section) size(name string, dst *int64, lo, hi int64) (hcl.Range, bool) {
	var text string
	rng, ok := s.str(name, &text)
	if !ok {
		return rng, false
	}
	n, err := ParseSize(text)
	switch {
	case err != nil:
		s.d.errorf(rng, "Invalid size", "%s: %s.", name, err)
		return rng, false
	case n < lo || n > hi:
		s.d.errorf(rng, "Invalid size", "%s must be between %s and %s; got %s.", name, formatSize(lo), formatSize(hi), quote(text))
		return rng, false
	}
	*dst = n
	return rng, true
}

// stringMap sets *dst to a map whose values are strings; numbers are accepted and written in
// decimal. Keys and values are checked one by one, at their own position for a literal map.
func (s *section) stringMap(name string, dst *map[string]string) bool {
	a := s.attrs[name]
	if a == nil {
		return false
	}
	result := map[string]string{}
	if items, isLiteral := literalMap(a.Expr); isLiteral {
		keyRanges := map[string]hcl.Range{}
		for _, item := range items {
			key, keyOK := s.element(name, item.KeyExpr, "key")
			value, valueOK := s.element(name, item.ValueExpr, "value")
			if !keyOK {
				continue
			}
			if first, dup := keyRanges[key]; dup {
				s.d.errorf(item.KeyExpr.Range(), "Duplicate key", "%s has key %q twice; first at %s:%d.", name, key, first.Filename, first.Start.Line)
				continue
			}
			keyRanges[key] = item.KeyExpr.Range()
			if valueOK {
				result[key] = value
			}
		}
		*dst = result
		return true
	}
	value, rng, ok := s.eval(name)
	if !ok {
		return false
	}
	if !value.Type().IsObjectType() && !value.Type().IsMapType() {
		s.d.errorf(rng, "Incorrect attribute value type", "Inappropriate value for attribute %q: a map of strings is required.", name)
		return false
	}
	for it := value.ElementIterator(); it.Next(); {
		key, element := it.Element()
		text, ok := stringOrNumber(element)
		if !ok {
			s.d.errorf(rng, "Incorrect attribute value type", "The value of %q for key %q must be a string or a number.", name, key.AsString())
			continue
		}
		result[key.AsString()] = text
	}
	*dst = result
	return true
}

// element evaluates one key or value of a literal map.
func (s *section) element(name string, expr hcl.Expression, role string) (string, bool) {
	value, diags := s.d.evalExpr(expr, name, slices.Contains(s.sc.secret, name))
	s.d.add(diags)
	if diags.HasErrors() {
		return "", false
	}
	text, ok := stringOrNumber(value)
	if !ok {
		s.d.errorf(expr.Range(), "Incorrect attribute value type", "Each %s of %q must be a string or a number.", role, name)
	}
	return text, ok
}

func stringOrNumber(value cty.Value) (string, bool) {
	if value.IsNull() || !value.IsWhollyKnown() {
		return "", false
	}
	if value.Type() != cty.String && value.Type() != cty.Number {
		return "", false
	}
	converted, err := convert.Convert(value, cty.String)
	if err != nil {
		return "", false
	}
	return converted.AsString(), true
}

// literalList returns the element expressions of a list written out as [a, b].
func literalList(expr hcl.Expression) ([]hcl.Expression, bool) {
	if tuple, ok := expr.(*hclsyntax.TupleConsExpr); ok {
		exprs := make([]hcl.Expression, len(tuple.Exprs))
		for i, expr := range tuple.Exprs {
			exprs[i] = expr
		}
		return exprs, true
	}
	return nil, false
}

// literalMap returns the items of a map written out as { k = v }.
func literalMap(expr hcl.Expression) ([]hclsyntax.ObjectConsItem, bool) {
	if object, ok := expr.(*hclsyntax.ObjectConsExpr); ok {
		return object.Items, true
	}
	return nil, false
}

// checkLength reports a routing key or pattern longer than RabbitMQ accepts. Any other pattern
// is valid: RabbitMQ reads odd words such as "a#b" literally.
func (d *decoder) checkLength(name, value string, rng hcl.Range) {
	if len(value) > maxNameLength {
		d.errorf(rng, "Too long", "%s is %d bytes; RabbitMQ accepts at most %d in a routing key or pattern.", name, len(value), maxNameLength)
	}
}

// formatSize writes n with the largest IEC unit that divides it.
func formatSize(n int64) string {
	units := []struct {
		suffix string
		factor int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if n >= u.factor && n%u.factor == 0 {
			return strconv.FormatInt(n/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
