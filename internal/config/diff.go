package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Change is one difference between two configurations, as a reload reports it.
type Change struct {
	Op     string `json:"op"`   // "+" added, "-" removed, "~" changed
	Kind   string `json:"kind"` // router, cluster, source, target, module, route
	Name   string `json:"name,omitempty"`
	Detail string `json:"detail,omitempty"` // for "~": what changed (never a secret's value)
}

// String is the change's line in `router reload` output: `+ route "x"`,
// `~ module "z": wasm file changed`.
func (c Change) String() string {
	s := c.Op + " " + c.Kind
	if c.Name != "" {
		s += fmt.Sprintf(" %q", c.Name)
	}
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	return s
}

// Changes lists what differs from old to next, block by block, in the order kinds flow
// (clusters, sources, targets, modules, routes). A module is identified by its block and its
// .wasm file's content: oldWasm and nextWasm hold each module's content hash by name, so a
// rebuilt file is a change. Test blocks run only offline and are not compared.
func Changes(old, next *Config, oldWasm, nextWasm map[string]string) []Change {
	var out []Change
	add := func(op, kind, name string, details []string) {
		out = append(out, Change{Op: op, Kind: kind, Name: name, Detail: strings.Join(details, ", ")})
	}
	if d := routerAttrs.changes(old.Router, next.Router); len(d) > 0 {
		add("~", "router", "", d)
	}
	compareBlocks(old.Clusters, next.Clusters, func(c ClusterSpec) string { return c.Name }, clusterAttrs.changes, "cluster", add)
	compareBlocks(old.Sources, next.Sources, func(s SourceSpec) string { return s.Name }, sourceAttrs.changes, "source", add)
	compareBlocks(old.Targets, next.Targets, func(t TargetSpec) string { return t.Name }, targetAttrs.changes, "target", add)
	compareBlocks(old.Modules, next.Modules, func(m ModuleSpec) string { return m.Name }, func(a, b ModuleSpec) []string {
		d := moduleAttrs.changes(a, b)
		if oldWasm[a.Name] != nextWasm[b.Name] && a.Path == b.Path {
			d = append([]string{"wasm file changed"}, d...)
		}
		return d
	}, "module", add)
	compareBlocks(old.Routes, next.Routes, func(r RouteSpec) string { return r.Name }, routeAttrs.changes, "route", add)
	return out
}

// compareBlocks reports removed blocks, then added and changed ones in next's order.
func compareBlocks[T any](old, next []T, name func(T) string, diff func(a, b T) []string, kind string,
	add func(op, kind, name string, details []string)) {
	before := make(map[string]T, len(old))
	for _, b := range old {
		before[name(b)] = b
	}
	after := make(map[string]bool, len(next))
	for _, b := range next {
		after[name(b)] = true
	}
	for _, b := range old {
		if !after[name(b)] {
			add("-", kind, name(b), nil)
		}
	}
	for _, b := range next {
		a, ok := before[name(b)]
		switch {
		case !ok:
			add("+", kind, name(b), nil)
		default:
			if d := diff(a, b); len(d) > 0 {
				add("~", kind, name(b), d)
			}
		}
	}
}

// The attributes a reload compares, block by block, by their names in the file; a change
// reports the names only (a cluster's url may hold a password).
var (
	routerAttrs  = attributes[RouterSpec]("admin_addr", "admin_token", "log_level", "log_format", "max_message_size", "memory_limit")
	clusterAttrs = attributes[ClusterSpec]("url", "tls")
	sourceAttrs  = attributes[SourceSpec]("cluster", "exchange", "queue", "bindings", "prefetch", "queue_type", "delivery_limit", "dead_letter_exchange")
	targetAttrs  = attributes[TargetSpec]("clusters", "mode", "exchange", "routing_key")
	moduleAttrs  = attributes[ModuleSpec]("path", "config", "timeout", "max_memory", "pool_size")
	routeAttrs   = attributes[RouteSpec]("source", "match", "filters", "transforms", "handler", "targets", "retry", "dead_letter")
	storeAttrs   = attributes[StoreSpec]("path", "retention", "max_size", "on_full", "backend", "cluster", "stream", "takeover", "stream_port")
)

// blockAttrs compares some attributes of one kind of block.
type blockAttrs[T any] struct {
	names  []string
	fields []int // the struct field of each name
}

// attributes finds the field of each attribute name: the name without its underscores, in
// any case (dead_letter_exchange is DeadLetterExchange, url is URL). A name without a field
// is a mistake in the lists above, caught when the package loads.
func attributes[T any](names ...string) blockAttrs[T] {
	typ := reflect.TypeFor[T]()
	a := blockAttrs[T]{names: names}
	for _, name := range names {
		i := slices.IndexFunc(reflect.VisibleFields(typ), func(f reflect.StructField) bool {
			return len(f.Index) == 1 && strings.EqualFold(f.Name, strings.ReplaceAll(name, "_", ""))
		})
		if i < 0 {
			panic(fmt.Sprintf("config: %s has no field for attribute %q", typ.Name(), name))
		}
		a.fields = append(a.fields, reflect.VisibleFields(typ)[i].Index[0])
	}
	return a
}

// changes names the attributes that differ from a to b, in the list's order.
func (attrs blockAttrs[T]) changes(a, b T) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i, f := range attrs.fields {
		if !sameValue(va.Field(f), vb.Field(f)) {
			out = append(out, attrs.names[i])
		}
	}
	return out
}

// sameValue is equality as the file means it: an empty list or map is an absent one, and a
// block (the tls block) compares by content.
func sameValue(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			vb := b.MapIndex(k)
			if !vb.IsValid() || !sameValue(a.MapIndex(k), vb) {
				return false
			}
		}
		return true
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameValue(a.Elem(), b.Elem())
	default:
		return a.Equal(b)
	}
}

// NeedsRestart reports, as error diagnostics at the new file's positions, the changes a
// running router cannot apply: the store (the log's file and its limits are opened once) and
// the admin API's address (the reload's own answer travels on it).
func NeedsRestart(old, next *Config) hcl.Diagnostics {
	var diags hcl.Diagnostics
	at := func(rngs ...hcl.Range) *hcl.Range {
		for _, r := range rngs {
			if r.Filename != "" {
				return &r
			}
		}
		return &hcl.Range{Filename: next.File, Start: hcl.InitialPos, End: hcl.InitialPos}
	}
	restart := func(detail string, subject *hcl.Range) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Change needs a restart",
			Detail:   detail + " The running configuration is unchanged.",
			Subject:  subject,
		})
	}
	if d := storeAttrs.changes(old.Store, next.Store); len(d) > 0 {
		restart("the store block changed ("+strings.Join(d, ", ")+"); the event log is opened once, at start.",
			at(next.Ranges.Store, next.Ranges.Router))
	}
	if old.Router.AdminAddr != next.Router.AdminAddr {
		restart("router.admin_addr changed; the admin API keeps its address until a restart.", at(next.Ranges.AdminAddr, next.Ranges.Router))
	}
	if old.Router.AdminToken != next.Router.AdminToken {
		restart("router.admin_token changed; the admin API keeps its token until a restart, so that a reload cannot lock out the client that asked for it.",
			at(next.Ranges.Router))
	}
	if old.Router.LogFormat != next.Router.LogFormat {
		restart("router.log_format changed; the log's format is set at start.", at(next.Ranges.Router))
	}
	if !equalTracing(old.Tracing, next.Tracing) {
		var rng hcl.Range
		if next.Tracing != nil {
			rng = next.Tracing.Range
		}
		restart("the tracing block changed; the span exporter is set up at start.", at(rng))
	}
	return diags
}

// FileHash is the SHA-256 of a file's content, in hex ("" when it cannot be read: loading
// the module reports why).
func FileHash(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// equalTracing compares tracing blocks, positions aside.
func equalTracing(a, b *TracingSpec) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Range, y.Range = hcl.Range{}, hcl.Range{}
	return x == y
}
