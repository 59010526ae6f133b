package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

var (
	testSchema   = schema{blocks: []string{"input", "expect"}}
	inputSchema  = schema{attrs: []string{"source", "routing_key", "headers", "body"}, required: []string{"source"}}
	expectSchema = schema{attrs: []string{"route", "targets", "verdict", "reason", "routing_key", "body", "headers", "emitted"}}
)

func (d *decoder) decodeTest(b *hcl.Block) TestSpec {
	t := TestSpec{Name: b.Labels[0], Range: b.LabelRanges[0]}
	what := fmt.Sprintf("test %q", t.Name)
	s := d.open(b.Body, testSchema, what, b.DefRange)
	if ib := s.nested("input"); ib != nil {
		d.decodeTestInput(ib, &t.Input, what)
	} else {
		d.errorf(b.DefRange, "Missing input block", "%s needs an input block: the event to feed in.", what)
	}
	if eb := s.nested("expect"); eb != nil {
		d.decodeTestExpect(eb, &t.Expect, what)
	} else {
		d.errorf(b.DefRange, "Missing expect block", "%s needs an expect block: what to check.", what)
	}
	return t
}

func (d *decoder) decodeTestInput(b *hcl.Block, in *TestInput, what string) {
	s := d.open(b.Body, inputSchema, "the input block of "+what, b.DefRange)
	if rng, ok := s.str("source", &in.Source); ok {
		d.ref(kindSource, in.Source, what, rng)
	}
	if rng, ok := s.str("routing_key", &in.RoutingKey); ok {
		d.checkLength("routing_key", in.RoutingKey, rng)
	}
	in.Headers = map[string]string{}
	s.stringMap("headers", &in.Headers)
	s.str("body", &in.Body)
}

// decodeTestExpect leaves every check that is not written nil, meaning "not checked".
func (d *decoder) decodeTestExpect(b *hcl.Block, ex *TestExpect, what string) {
	s := d.open(b.Body, expectSchema, "the expect block of "+what, b.DefRange)
	if rng, ok := s.str("route", &ex.Route); ok && ex.Route != "" {
		d.ref(kindRoute, ex.Route, what, rng)
	}
	ranges, _ := s.stringList("targets", &ex.Targets)
	d.refList(kindTarget, ex.Targets[:len(ranges)], ranges, what)
	var routingKey, body string
	if rng, ok := s.str("routing_key", &routingKey); ok {
		d.checkLength("routing_key", routingKey, rng)
		ex.RoutingKey = &routingKey
	}
	if _, ok := s.str("body", &body); ok {
		ex.Body = &body
	}
	s.stringMap("headers", &ex.Headers)
	d.decodeTestVerdict(s, ex)
	if value, rng, ok := s.eval("emitted"); ok {
		ex.Emitted = d.decodeTestEmitted(value, rng, what)
	}
}

// decodeTestVerdict reads verdict and reason; a reason alone means verdict "dead_letter".
func (d *decoder) decodeTestVerdict(s *section, ex *TestExpect) {
	if rng, ok := s.oneOf("verdict", &ex.Verdict, TestVerdicts...); ok {
		ex.VerdictRange = rng
	}
	var reason string
	rng, ok := s.str("reason", &reason)
	if !ok {
		return
	}
	ex.Reason = &reason
	switch ex.Verdict {
	case "":
		ex.Verdict, ex.VerdictRange = "dead_letter", rng
	case "dead_letter":
	default:
		d.errorf(rng, "Invalid value", `reason is the failure reason of a dead letter; it needs verdict = "dead_letter", not %q.`, ex.Verdict)
	}
	if len(ex.Targets) > 0 {
		d.errorf(rng, "Test cannot pass", "a dead-lettered event reaches no target; drop targets or reason.")
	}
}

// decodeTestEmitted reads a list of objects { target, routing_key, body, headers }.
func (d *decoder) decodeTestEmitted(value cty.Value, rng hcl.Range, what string) []TestEmit {
	ty := value.Type()
	if !ty.IsListType() && !ty.IsTupleType() {
		d.errorf(rng, "Incorrect attribute value type", `emitted must be a list of objects such as { target = "t", routing_key = "k", body = "..." }.`)
		return nil
	}
	out := []TestEmit{}
	i := 0
	for it := value.ElementIterator(); it.Next(); i++ {
		_, el := it.Element()
		bad := func(format string, args ...any) {
			d.errorf(rng, "Incorrect attribute value type", "emitted[%d] of %s: %s", i, what, fmt.Sprintf(format, args...))
		}
		if el.IsNull() || !(el.Type().IsObjectType() || el.Type().IsMapType()) {
			bad("must be an object such as { target = \"t\", routing_key = \"k\", body = \"...\" }.")
			continue
		}
		var em TestEmit
		ok := true
		for eit := el.ElementIterator(); eit.Next(); {
			k, v := eit.Element()
			key := k.AsString()
			if v.IsNull() {
				continue
			}
			switch key {
			case "target", "routing_key", "body":
				text, isText := stringOrNumber(v)
				if !isText {
					bad("%s must be a string.", key)
					ok = false
					continue
				}
				switch key {
				case "target":
					em.Target = text
				case "routing_key":
					em.RoutingKey = &text
				case "body":
					em.Body = &text
				}
			case "headers":
				if !v.Type().IsObjectType() && !v.Type().IsMapType() {
					bad("headers must be a map of strings.")
					ok = false
					continue
				}
				em.Headers = map[string]string{}
				for hit := v.ElementIterator(); hit.Next(); {
					hk, hv := hit.Element()
					text, isText := stringOrNumber(hv)
					if !isText {
						bad("header %q must be a string or a number.", hk.AsString())
						ok = false
						continue
					}
					em.Headers[hk.AsString()] = text
				}
			default:
				bad("unknown key %q; expected target, routing_key, body or headers.", key)
				ok = false
			}
		}
		if em.Target == "" && ok {
			bad("target is required.")
			ok = false
		}
		if em.Target != "" {
			d.ref(kindTarget, em.Target, what, rng)
		}
		if ok {
			out = append(out, em)
		}
	}
	return out
}
