package config

import (
	"github.com/hashicorp/hcl/v2"
)

// checkConfig runs the checks that span blocks, after every block is decoded.
func (d *decoder) checkConfig(cfg *Config) {
	top := hcl.Range{Filename: d.file, Start: hcl.InitialPos, End: hcl.InitialPos}
	if len(cfg.Sources) == 0 && len(d.declared[kindSource]) == 0 {
		d.warnf(top, "No source", "The configuration declares no source, so the router consumes nothing.")
	}
	if len(cfg.Routes) == 0 && len(d.declared[kindRoute]) == 0 {
		d.warnf(top, "No route", "The configuration declares no route, so every event is stored as unmatched.")
	}
	d.checkSharedQueues(cfg.Sources)
	d.checkTestRoutes(cfg)
}

// checkSharedQueues reports two sources consuming one queue: each message would go to one of
// them at random, so routes on either would see only part of the stream.
func (d *decoder) checkSharedQueues(sources []SourceSpec) {
	type queueKey struct{ cluster, queue string }
	first := map[queueKey]SourceSpec{}
	for _, src := range sources {
		if src.Cluster == "" || src.Queue == "" {
			continue
		}
		key := queueKey{src.Cluster, src.Queue}
		if other, dup := first[key]; dup {
			d.errorf(src.Range, "Shared queue", "source %q consumes queue %q of cluster %q, as source %q (%s:%d) does.",
				src.Name, src.Queue, src.Cluster, other.Name, other.Range.Filename, other.Range.Start.Line)
			continue
		}
		first[key] = src
	}
}

// checkTestRoutes warns about a test expecting a route that its input's source does not feed:
// such a test can never pass.
func (d *decoder) checkTestRoutes(cfg *Config) {
	for _, t := range cfg.Tests {
		route := cfg.Route(t.Expect.Route)
		if route == nil || t.Input.Source == "" || route.Source == t.Input.Source {
			continue
		}
		d.warnf(t.Range, "Test cannot pass", "test %q feeds source %q but expects route %q, which reads source %q.",
			t.Name, t.Input.Source, route.Name, route.Source)
	}
}
