package bench

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// RouterConfig is the router configuration of a benchmark run: one source, one route that
// matches everything, one target; optionally WASM modules on the route and a second cluster
// that the target delivers to as well (mode "all").
type RouterConfig struct {
	URL       string // the broker; written into the file, which stays in the run's private dir
	StorePath string
	// Stream, when set, puts the log in a RabbitMQ stream instead of the bbolt file StorePath.
	Stream    *StreamStore
	AdminAddr string
	Prefetch  int
	Topology  Topology
	// Filter and Transform are paths of WASM modules for the route's filters and transforms
	// ("" for none); ModuleConfig is given to both.
	Filter, Transform string
	ModuleConfig      map[string]string
	// SecondURL adds a cluster "dr"; the target then delivers to both clusters (mode "all").
	SecondURL string
	// TargetURL, when set, is a cluster "out" of its own for the target (the memory
	// benchmark points it at a proxy it cuts to make an outage).
	TargetURL string
	LogLevel  string // default "warn": logging every event would be measured too
	// TracingEndpoint adds a tracing block exporting every span (sample_ratio 1.0) over
	// OTLP/HTTP to this collector base URL.
	TracingEndpoint string
}

// HCL renders the configuration in the router's format (docs/configuration.md).
func (c RouterConfig) HCL() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	level := c.LogLevel
	if level == "" {
		level = "warn"
	}
	w("router {\n  admin_addr = %s\n  log_level  = %s\n}\n\n", hclString(c.AdminAddr), hclString(level))
	if s := c.Stream; s != nil {
		cluster := "main"
		if s.URL != "" {
			cluster = "log"
			w("cluster \"log\" {\n  url = %s\n}\n\n", hclString(s.URL))
		}
		w("store {\n  backend = \"stream\"\n  cluster = %s\n  stream  = %s\n", hclString(cluster), hclString(s.Stream))
		if s.Takeover != "" {
			w("  takeover = %s\n", hclString(s.Takeover))
		}
		if s.StreamPort != 0 {
			w("  stream_port = %d\n", s.StreamPort)
		}
		w("}\n\n")
	} else {
		w("store {\n  path = %s\n}\n\n", hclString(c.StorePath))
	}
	if c.TracingEndpoint != "" {
		w("tracing {\n  endpoint     = %s\n  protocol     = \"http/protobuf\"\n  sample_ratio = 1.0\n}\n\n", hclString(c.TracingEndpoint))
	}
	w("cluster \"main\" {\n  url = %s\n}\n\n", hclString(c.URL))
	if c.SecondURL != "" {
		w("cluster \"dr\" {\n  url = %s\n}\n\n", hclString(c.SecondURL))
	}
	t := c.Topology
	w("source \"in\" {\n  cluster  = \"main\"\n  exchange = %s\n  queue    = %s\n  bindings = [\"#\"]\n  prefetch = %d\n}\n\n",
		hclString(t.SourceExchange), hclString(t.SourceQueue), c.Prefetch)
	if c.SecondURL != "" {
		w("target \"out\" {\n  clusters = [\"main\", \"dr\"]\n  mode     = \"all\"\n  exchange = %s\n}\n\n", hclString(t.TargetExchange))
	} else if c.TargetURL != "" {
		w("cluster \"out\" {\n  url = %s\n}\n\n", hclString(c.TargetURL))
		w("target \"out\" {\n  cluster  = \"out\"\n  exchange = %s\n}\n\n", hclString(t.TargetExchange))
	} else {
		w("target \"out\" {\n  cluster  = \"main\"\n  exchange = %s\n}\n\n", hclString(t.TargetExchange))
	}
	var filters, transforms []string
	if c.Filter != "" {
		c.module(&b, "filter", c.Filter)
		filters = append(filters, `"filter"`)
	}
	if c.Transform != "" {
		c.module(&b, "transform", c.Transform)
		transforms = append(transforms, `"transform"`)
	}
	w("route \"all\" {\n  source     = \"in\"\n  match      = [\"#\"]\n  filters    = [%s]\n  transforms = [%s]\n  targets    = [\"out\"]\n}\n",
		strings.Join(filters, ", "), strings.Join(transforms, ", "))
	return b.String()
}

func (c RouterConfig) module(b *strings.Builder, name, path string) {
	fmt.Fprintf(b, "module %q {\n  path   = %s\n  config = {", name, hclString(path))
	keys := make([]string, 0, len(c.ModuleConfig))
	for k := range c.ModuleConfig {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(b, " %s = %s", hclString(k), hclString(c.ModuleConfig[k]))
	}
	b.WriteString(" }\n}\n\n")
}

// hclString quotes s as an HCL string literal: Go's escapes, plus HCL's template sequences.
func hclString(s string) string {
	q := strconv.Quote(s)
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}

// ParseModuleConfig parses "k=v,k2=v2" into a map.
func ParseModuleConfig(s string) (map[string]string, error) {
	m := map[string]string{}
	if s == "" {
		return m, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("bench: module config %q: want key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}
