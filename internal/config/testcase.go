package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

var (
	testSchema   = schema{blocks: []string{"input", "expect"}}
	inputSchema  = schema{attrs: []string{"source", "routing_key", "headers", "body"}, required: []string{"source"}}
	expectSchema = schema{attrs: []string{"route", "targets", "routing_key", "body", "headers"}}
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
}
