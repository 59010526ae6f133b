package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
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
	if d := routerChanges(old.Router, next.Router); len(d) > 0 {
		add("~", "router", "", d)
	}
	compareBlocks(old.Clusters, next.Clusters, func(c ClusterSpec) string { return c.Name }, clusterChanges, "cluster", add)
	compareBlocks(old.Sources, next.Sources, func(s SourceSpec) string { return s.Name }, sourceChanges, "source", add)
	compareBlocks(old.Targets, next.Targets, func(t TargetSpec) string { return t.Name }, targetChanges, "target", add)
	compareBlocks(old.Modules, next.Modules, func(m ModuleSpec) string { return m.Name }, func(a, b ModuleSpec) []string {
		d := moduleChanges(a, b)
		if oldWasm[a.Name] != nextWasm[b.Name] && a.Path == b.Path {
			d = append([]string{"wasm file changed"}, d...)
		}
		return d
	}, "module", add)
	compareBlocks(old.Routes, next.Routes, func(r RouteSpec) string { return r.Name }, routeChanges, "route", add)
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

// fieldDiff collects the names of the fields that differ.
type fieldDiff []string

func (f *fieldDiff) cmp(name string, differ bool) {
	if differ {
		*f = append(*f, name)
	}
}

func routerChanges(a, b RouterSpec) []string {
	var f fieldDiff
	f.cmp("admin_addr", a.AdminAddr != b.AdminAddr)
	f.cmp("admin_token", a.AdminToken != b.AdminToken)
	f.cmp("log_level", a.LogLevel != b.LogLevel)
	f.cmp("log_format", a.LogFormat != b.LogFormat)
	f.cmp("max_message_size", a.MaxMessageSize != b.MaxMessageSize)
	return f
}

func clusterChanges(a, b ClusterSpec) []string {
	var f fieldDiff
	f.cmp("url", a.URL != b.URL) // the value may hold a password: only its name is reported
	f.cmp("tls", !equalPtr(a.TLS, b.TLS))
	return f
}

func sourceChanges(a, b SourceSpec) []string {
	var f fieldDiff
	f.cmp("cluster", a.Cluster != b.Cluster)
	f.cmp("exchange", a.Exchange != b.Exchange)
	f.cmp("queue", a.Queue != b.Queue)
	f.cmp("bindings", !slices.Equal(a.Bindings, b.Bindings))
	f.cmp("prefetch", a.Prefetch != b.Prefetch)
	f.cmp("queue_type", a.QueueType != b.QueueType)
	f.cmp("delivery_limit", a.DeliveryLimit != b.DeliveryLimit)
	f.cmp("dead_letter_exchange", a.DeadLetterExchange != b.DeadLetterExchange)
	return f
}

func targetChanges(a, b TargetSpec) []string {
	var f fieldDiff
	f.cmp("clusters", !slices.Equal(a.Clusters, b.Clusters))
	f.cmp("mode", a.Mode != b.Mode)
	f.cmp("exchange", a.Exchange != b.Exchange)
	f.cmp("routing_key", a.RoutingKey != b.RoutingKey)
	return f
}

func moduleChanges(a, b ModuleSpec) []string {
	var f fieldDiff
	f.cmp("path", a.Path != b.Path)
	f.cmp("config", !maps.Equal(a.Config, b.Config))
	f.cmp("timeout", a.Timeout != b.Timeout)
	f.cmp("max_memory", a.MaxMemory != b.MaxMemory)
	f.cmp("pool_size", a.PoolSize != b.PoolSize)
	return f
}

func routeChanges(a, b RouteSpec) []string {
	var f fieldDiff
	f.cmp("source", a.Source != b.Source)
	f.cmp("match", !slices.Equal(a.Match, b.Match))
	f.cmp("filters", !slices.Equal(a.Filters, b.Filters))
	f.cmp("transforms", !slices.Equal(a.Transforms, b.Transforms))
	f.cmp("handler", a.Handler != b.Handler)
	f.cmp("targets", !slices.Equal(a.Targets, b.Targets))
	f.cmp("retry", a.Retry != b.Retry)
	f.cmp("dead_letter", a.DeadLetter != b.DeadLetter)
	return f
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
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
	if old.Store != next.Store {
		var f fieldDiff
		f.cmp("path", old.Store.Path != next.Store.Path)
		f.cmp("retention", old.Store.Retention != next.Store.Retention)
		f.cmp("max_size", old.Store.MaxSize != next.Store.MaxSize)
		f.cmp("on_full", old.Store.OnFull != next.Store.OnFull)
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Change needs a restart",
			Detail:   "the store block changed (" + strings.Join(f, ", ") + "); the event log is opened once, at start. The running configuration is unchanged.",
			Subject:  at(next.Ranges.Store, next.Ranges.Router),
		})
	}
	if old.Router.AdminAddr != next.Router.AdminAddr {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Change needs a restart",
			Detail:   "router.admin_addr changed; the admin API keeps its address until a restart. The running configuration is unchanged.",
			Subject:  at(next.Ranges.AdminAddr, next.Ranges.Router),
		})
	}
	if old.Router.AdminToken != next.Router.AdminToken {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Change needs a restart",
			Detail:   "router.admin_token changed; the admin API keeps its token until a restart, so that a reload cannot lock out the client that asked for it. The running configuration is unchanged.",
			Subject:  at(next.Ranges.Router),
		})
	}
	if old.Router.LogFormat != next.Router.LogFormat {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Change needs a restart",
			Detail:   "router.log_format changed; the log's format is set at start. The running configuration is unchanged.",
			Subject:  at(next.Ranges.Router),
		})
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
