package config

import (
	"strings"
	"testing"
)

const tracingBase = `
cluster "main" { url = "amqp://localhost/" }
source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q"
}
target "t" {
  cluster = "main"
  exchange = "x"
}
route "r" {
  source  = "in"
  targets = ["t"]
}
`

func loadTracing(t *testing.T, block string, env map[string]string) (*TracingSpec, string) {
	t.Helper()
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	cfg, diags := LoadBytes([]byte(tracingBase+block), "router.hcl", lookup)
	if cfg == nil {
		t.Fatalf("syntax error:\n%s", formatted(diags))
	}
	return cfg.Tracing, formatted(diags)
}

func TestTracingAbsentMeansNoSpans(t *testing.T) {
	// The OTEL_* variables alone do not turn tracing on.
	spec, diags := loadTracing(t, "", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
	if spec != nil || diags != "" {
		t.Fatalf("spec = %+v, diagnostics:\n%s", spec, diags)
	}
}

func TestTracingBlockValues(t *testing.T) {
	spec, diags := loadTracing(t, `tracing {
  endpoint     = "http://collector:4318/"
  protocol     = "http/protobuf"
  sample_ratio = 0.25
  service_name = "edge-router"
}`, map[string]string{
		// The block wins over every variable.
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://other:4318/v1/traces",
		"OTEL_EXPORTER_OTLP_PROTOCOL":        "grpc",
		"OTEL_TRACES_SAMPLER":                "always_off",
		"OTEL_SERVICE_NAME":                  "other",
	})
	if diags != "" {
		t.Fatalf("diagnostics:\n%s", diags)
	}
	check(t, "Endpoint", spec.Endpoint, "http://collector:4318/v1/traces")
	check(t, "Protocol", spec.Protocol, ProtocolHTTP)
	check(t, "SampleRatio", spec.SampleRatio, 0.25)
	check(t, "ServiceName", spec.ServiceName, "edge-router")
}

func TestTracingDefaults(t *testing.T) {
	spec, diags := loadTracing(t, "tracing {}", nil)
	if diags != "" {
		t.Fatalf("diagnostics:\n%s", diags)
	}
	check(t, "Endpoint", spec.Endpoint, "http://localhost:4318/v1/traces")
	check(t, "Protocol", spec.Protocol, ProtocolHTTP)
	check(t, "SampleRatio", spec.SampleRatio, 1.0)
	check(t, "ServiceName", spec.ServiceName, "")

	spec, _ = loadTracing(t, `tracing { protocol = "grpc" }`, nil)
	check(t, "grpc Endpoint", spec.Endpoint, "http://localhost:4317")
}

func TestTracingEnvironmentFillsWhatTheBlockLeavesUnset(t *testing.T) {
	cases := []struct {
		name  string
		block string
		env   map[string]string
		want  TracingSpec
	}{
		{"base endpoint", "tracing {}", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example:4318"},
			TracingSpec{Endpoint: "https://collector.example:4318/v1/traces", Protocol: ProtocolHTTP, SampleRatio: 1}},
		{"signal endpoint used as is", "tracing {}", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://base:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:9999/custom"},
			TracingSpec{Endpoint: "http://traces:9999/custom", Protocol: ProtocolHTTP, SampleRatio: 1}},
		{"grpc from the environment", "tracing {}", map[string]string{
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"},
			TracingSpec{Endpoint: "http://collector:4317", Protocol: ProtocolGRPC, SampleRatio: 1}},
		{"signal protocol first", "tracing {}", map[string]string{
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
			TracingSpec{Endpoint: "http://localhost:4317", Protocol: ProtocolGRPC, SampleRatio: 1}},
		{"ratio sampler", "tracing {}", map[string]string{
			"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
			TracingSpec{Endpoint: "http://localhost:4318/v1/traces", Protocol: ProtocolHTTP, SampleRatio: 0.1}},
		{"always off", "tracing {}", map[string]string{"OTEL_TRACES_SAMPLER": "always_off"},
			TracingSpec{Endpoint: "http://localhost:4318/v1/traces", Protocol: ProtocolHTTP, SampleRatio: 0}},
		{"service name", "tracing {}", map[string]string{"OTEL_SERVICE_NAME": "svc"},
			TracingSpec{Endpoint: "http://localhost:4318/v1/traces", Protocol: ProtocolHTTP, SampleRatio: 1, ServiceName: "svc"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, diags := loadTracing(t, c.block, c.env)
			if diags != "" {
				t.Fatalf("diagnostics:\n%s", diags)
			}
			spec.Range = c.want.Range
			check(t, "spec", *spec, c.want)
		})
	}
}

func TestTracingBadEnvironmentIsReportedAtTheBlock(t *testing.T) {
	cases := map[string]map[string]string{
		"OTEL_EXPORTER_OTLP_PROTOCOL":        {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
		"OTEL_EXPORTER_OTLP_ENDPOINT":        {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://c/"},
		"OTEL_TRACES_SAMPLER_ARG":            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
		"OTEL_TRACES_SAMPLER":                {"OTEL_TRACES_SAMPLER": "jaeger_remote"},
	}
	for variable, env := range cases {
		t.Run(variable, func(t *testing.T) {
			_, diags := loadTracing(t, "\ntracing {}", env)
			want := "router.hcl:17:1: error: Invalid environment variable: " + variable + " "
			if !strings.HasPrefix(diags, want) || strings.Count(diags, "\n") != 1 {
				t.Fatalf("diagnostics:\n%s\nwant one starting with %q", diags, want)
			}
		})
	}
	// A value the block sets is not taken from the environment, so a bad variable is ignored.
	_, diags := loadTracing(t, `tracing { protocol = "grpc" }`, map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
	if diags != "" {
		t.Fatalf("diagnostics:\n%s", diags)
	}
}
