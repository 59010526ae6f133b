package config

import (
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/wasmrouter/wasmrouter/internal/regfile"
)

// fileSchema is the top level of a configuration file: block headers only. Each block's body is
// decoded in a second pass against its own schema.
var fileSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "router"},
	{Type: "store"},
	{Type: "tracing"},
	{Type: kindCluster, LabelNames: []string{"name"}},
	{Type: kindSource, LabelNames: []string{"name"}},
	{Type: kindTarget, LabelNames: []string{"name"}},
	{Type: kindModule, LabelNames: []string{"name"}},
	{Type: kindRoute, LabelNames: []string{"name"}},
	{Type: kindTest, LabelNames: []string{"name"}},
}}

// Load reads and checks the file. filename is used in diagnostics exactly as given; lookupEnv
// backs env(), nil meaning os.LookupEnv. See LoadBytes.
func Load(filename string, lookupEnv func(string) (string, bool)) (*Config, hcl.Diagnostics) {
	src, err := regfile.Read(filename, maxSourceSize)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration",
			Detail:   pathless(err).Error(),
			Subject:  &hcl.Range{Filename: filename},
		}}
	}
	return LoadBytes(src, filename, lookupEnv)
}

// LoadBytes decodes and checks a configuration (docs/configuration.md) as if read from filename,
// whose directory anchors relative paths and file(). It reports every problem it finds, each
// at its position, sorted by position, with warnings among them.
//
// On a syntax error it returns a nil Config. Otherwise it returns a Config filled as far as
// the file allows, also when there are errors, so that a caller can go on checking; such a
// Config must not be run.
//
// Extensions of the original schema (marked so in docs/configuration.md):
//   - router.max_message_size: a size, default "128MiB", at most RabbitMQ's "512MiB"; larger
//     messages are dead-lettered at ingest.
//   - router.memory_limit: a size, at least "16MiB"; the Go runtime's soft memory limit
//     (GOMEMLIMIT). Unset: the GOMEMLIMIT variable, else 90% of the cgroup's memory.max.
//   - module.pool_size: instances per module, default 2, from 1 to 64.
//   - tracing (optional, see TracingSpec): endpoint, protocol, sample_ratio, service_name; the
//     OTEL_EXPORTER_OTLP_*, OTEL_TRACES_SAMPLER(_ARG) and OTEL_SERVICE_NAME variables fill what
//     the block leaves unset.
//
// Decisions the schema leaves open: a target with clusters must set mode ("all" or
// "failover"); delivery_limit requires a quorum queue; a config without sources or routes
// loads with a warning; two sources may not consume the same queue of a cluster; null means
// "not set"; sizes accept fractions that make whole bytes ("1.5GiB"). A file over 4 MiB, or
// nesting deeper than 256 levels, is refused before parsing.
//
// Print the diagnostics with FormatDiagnostics: HCL's own text writer quotes source lines, and
// a source line may hold a password.
func LoadBytes(src []byte, filename string, lookupEnv func(string) (string, bool)) (*Config, hcl.Diagnostics) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if diags := checkLimits(src, filename); diags.HasErrors() {
		return nil, diags
	}
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		scrub(diags, nil, nil)
		sortByPosition(diags)
		return nil, diags
	}
	d := newDecoder(filename, lookupEnv)
	d.add(diags) // warnings only: errors ended the load above
	cfg := d.decodeFile(file.Body)
	d.checkReferences()
	d.checkConfig(cfg)
	scrub(d.diags, d.secrets, d.read)
	sortByPosition(d.diags)
	return cfg, d.diags
}

func (d *decoder) decodeFile(body hcl.Body) *Config {
	content, diags := body.Content(fileSchema)
	d.add(diags)
	cfg := &Config{File: d.file, Dir: d.dir, Router: defaultRouter(), Store: d.defaultStore(), Attrs: d.attrs}
	var routerBlock, storeBlock, tracingBlock *hcl.Block
	for _, b := range content.Blocks {
		switch b.Type {
		case "router": // a second block is still checked, into a spec that is then dropped
			spec := defaultRouter()
			d.decodeRouter(b, &spec)
			if d.single(b, &routerBlock) {
				cfg.Router = spec
				cfg.Ranges.Router = b.DefRange
				if a, ok := attribute(b.Body, "admin_addr"); ok {
					cfg.Ranges.AdminAddr = a.Range
				}
			}
		case "store":
			spec := d.defaultStore()
			d.decodeStore(b, &spec)
			if d.single(b, &storeBlock) {
				cfg.Store = spec
				cfg.Ranges.Store = b.DefRange
			}
		case "tracing":
			spec := d.decodeTracing(b)
			if d.single(b, &tracingBlock) {
				cfg.Tracing = spec
			}
		case kindCluster:
			cfg.Clusters = appendUnique(cfg.Clusters, d.decodeCluster(b), d.declare(kindCluster, b))
		case kindSource:
			cfg.Sources = appendUnique(cfg.Sources, d.decodeSource(b), d.declare(kindSource, b))
		case kindTarget:
			cfg.Targets = appendUnique(cfg.Targets, d.decodeTarget(b), d.declare(kindTarget, b))
		case kindModule:
			cfg.Modules = appendUnique(cfg.Modules, d.decodeModule(b), d.declare(kindModule, b))
		case kindRoute:
			cfg.Routes = appendUnique(cfg.Routes, d.decodeRoute(b), d.declare(kindRoute, b))
		case kindTest:
			cfg.Tests = appendUnique(cfg.Tests, d.decodeTest(b), d.declare(kindTest, b))
		}
	}
	return cfg
}

// appendUnique appends a decoded block unless its name was a duplicate.
func appendUnique[T any](list []T, spec T, unique bool) []T {
	if !unique {
		return list
	}
	return append(list, spec)
}

// attribute finds a block's attribute by name without decoding the body again.
func attribute(body hcl.Body, name string) (*hcl.Attribute, bool) {
	attrs, _ := body.JustAttributes()
	a, ok := attrs[name]
	return a, ok
}
