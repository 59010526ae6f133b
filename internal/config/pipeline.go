package config

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Defaults and limits of the module and route blocks.
const (
	DefaultModuleTimeout   = 100 * time.Millisecond
	DefaultModuleMemory    = 64 << 20
	DefaultModulePoolSize  = 2
	MaxModulePoolSize      = 64
	wasmPageSize           = 64 << 10
	wasmMaxMemory          = 4 << 30 // 65536 pages of wasm32
	DefaultRetryAttempts   = 5
	DefaultRetryBackoff    = 200 * time.Millisecond
	DefaultRetryMaxBackoff = 30 * time.Second
)

var moduleSchema = schema{
	attrs:    []string{"path", "config", "timeout", "max_memory", "pool_size"},
	required: []string{"path"},
	secret:   []string{"config"}, // guests are commonly given API keys
}

func (d *decoder) decodeModule(b *hcl.Block) ModuleSpec {
	m := ModuleSpec{Name: b.Labels[0], Range: b.LabelRanges[0], Config: map[string]string{},
		Timeout: DefaultModuleTimeout, MaxMemory: DefaultModuleMemory, PoolSize: DefaultModulePoolSize}
	what := fmt.Sprintf("module %q", m.Name)
	s := d.open(b.Body, moduleSchema, what, b.DefRange)
	var path string
	if rng, ok := s.nonEmpty("path", &path); ok {
		m.Path, m.PathRange = resolvePath(d.dir, path), rng
	}
	s.stringMap("config", &m.Config)
	s.duration("timeout", &m.Timeout, true)
	s.size("max_memory", &m.MaxMemory, wasmPageSize, wasmMaxMemory)
	s.integer("pool_size", &m.PoolSize, 1, MaxModulePoolSize)
	return m
}

var routeSchema = schema{
	attrs:    []string{"source", "match", "filters", "transforms", "handler", "targets", "dead_letter"},
	required: []string{"source"},
	blocks:   []string{"retry"},
}

func (d *decoder) decodeRoute(b *hcl.Block) RouteSpec {
	r := RouteSpec{Name: b.Labels[0], Range: b.LabelRanges[0], Match: []string{"#"},
		Filters: []string{}, Transforms: []string{}, Targets: []string{},
		Retry: RetrySpec{Attempts: DefaultRetryAttempts, Backoff: DefaultRetryBackoff, MaxBackoff: DefaultRetryMaxBackoff}}
	what := fmt.Sprintf("route %q", r.Name)
	mark := d.errorCount()
	s := d.open(b.Body, routeSchema, what, b.DefRange)
	if rng, ok := s.str("source", &r.Source); ok {
		d.ref(kindSource, r.Source, what, rng)
	}
	ranges, matchOK := s.stringList("match", &r.Match)
	for i, pattern := range r.Match[:len(ranges)] {
		d.checkLength("match pattern", pattern, ranges[i])
	}
	r.FilterRanges = d.moduleList(s, "filters", &r.Filters, what)
	r.TransformRanges = d.moduleList(s, "transforms", &r.Transforms, what)
	if rng, ok := s.str("handler", &r.Handler); ok && r.Handler != "" {
		r.HandlerRange = rng
		d.ref(kindModule, r.Handler, what, rng)
	}
	ranges, _ = s.stringList("targets", &r.Targets)
	d.refList(kindTarget, r.Targets[:len(ranges)], ranges, what)
	if rng, ok := s.str("dead_letter", &r.DeadLetter); ok && r.DeadLetter != "" {
		d.ref(kindTarget, r.DeadLetter, what, rng)
	}
	if rb := s.nested("retry"); rb != nil {
		d.decodeRetry(rb, &r.Retry, what)
	}
	if d.errorsSince(mark) {
		return r
	}
	if matchOK && len(r.Match) == 0 {
		d.warnf(s.attrs["match"].Expr.Range(), "Route never matches", "%s has an empty match list; omit match to match every routing key.", what)
	}
	if len(r.Targets) == 0 && r.Handler == "" {
		d.warnf(r.Range, "Route delivers nowhere", "%s has neither targets nor a handler.", what)
	}
	return r
}

// moduleList reads a list of module names, returning where each one is written.
func (d *decoder) moduleList(s *section, name string, dst *[]string, what string) []hcl.Range {
	ranges, _ := s.stringList(name, dst)
	for i, module := range (*dst)[:len(ranges)] {
		d.ref(kindModule, module, what, ranges[i])
	}
	if ranges == nil {
		ranges = []hcl.Range{}
	}
	return ranges
}

// refList records a reference per element and reports names listed twice.
func (d *decoder) refList(kind string, names []string, ranges []hcl.Range, what string) {
	for i, name := range names {
		if slices.Index(names, name) < i {
			d.errorf(ranges[i], "Duplicate "+kind, "%s lists %s %q twice.", what, kind, name)
			continue
		}
		d.ref(kind, name, what, ranges[i])
	}
}

var retrySchema = schema{attrs: []string{"attempts", "backoff", "max_backoff"}}

func (d *decoder) decodeRetry(b *hcl.Block, r *RetrySpec, what string) {
	s := d.open(b.Body, retrySchema, "the retry block of "+what, b.DefRange)
	s.integer("attempts", &r.Attempts, 1, math.MaxInt32)
	backoffRange, backoffOK := s.duration("backoff", &r.Backoff, false)
	maxRange, maxOK := s.duration("max_backoff", &r.MaxBackoff, false)
	if r.Backoff > r.MaxBackoff {
		rng := maxRange
		if !maxOK && backoffOK {
			rng = backoffRange
		}
		d.errorf(rng, "Invalid retry policy", "backoff (%s) must not exceed max_backoff (%s).", r.Backoff, r.MaxBackoff)
	}
}
