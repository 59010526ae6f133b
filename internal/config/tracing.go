package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Tracing protocols: OTLP over HTTP with protobuf bodies, or over gRPC.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Defaults of the tracing block, those of the OpenTelemetry SDKs.
const (
	DefaultTracingHTTPEndpoint = "http://localhost:4318"
	DefaultTracingGRPCEndpoint = "http://localhost:4317"
	DefaultServiceName         = "wasmrouter"
	tracesPath                 = "/v1/traces"
)

// TracingSpec is the optional tracing block with the OTEL_* variables applied to what it leaves
// unset. Without the block there are no spans at all, whatever the environment says.
type TracingSpec struct {
	// Endpoint is the URL the exporter sends to: with http/protobuf the full traces URL (the
	// base URL with /v1/traces appended, or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is), with
	// grpc the collector's URL (http:// means without TLS).
	Endpoint    string
	Protocol    string  // ProtocolHTTP or ProtocolGRPC
	SampleRatio float64 // of the traces the router starts; a sampled parent is always followed
	ServiceName string  // "" leaves it to OTEL_RESOURCE_ATTRIBUTES, then DefaultServiceName
	Range       hcl.Range
}

var tracingSchema = schema{attrs: []string{"endpoint", "protocol", "sample_ratio", "service_name"}}

// decodeTracing reads the tracing block. A value the block leaves unset comes from the standard
// OpenTelemetry variables (the signal-specific one first); a bad variable is reported at the
// block, naming the variable.
func (d *decoder) decodeTracing(b *hcl.Block) *TracingSpec {
	t := &TracingSpec{Range: b.DefRange}
	s := d.open(b.Body, tracingSchema, "tracing", b.DefRange)

	if _, ok := s.oneOf("protocol", &t.Protocol, ProtocolHTTP, ProtocolGRPC); !ok {
		if _, set := s.has("protocol"); !set {
			t.Protocol = d.tracingProtocolFromEnv(b.DefRange)
		}
	}
	if t.Protocol == "" {
		t.Protocol = ProtocolHTTP
	}

	var base string
	if rng, ok := s.nonEmpty("endpoint", &base); ok {
		if msg := checkCollectorURL(base); msg != "" {
			d.errorf(rng, "Invalid endpoint", "endpoint %s.", msg)
		} else {
			t.Endpoint = signalURL(base, t.Protocol)
		}
	} else if _, set := s.has("endpoint"); !set {
		t.Endpoint = d.tracingEndpointFromEnv(b.DefRange, t.Protocol)
	}

	if rng, ok := s.has("sample_ratio"); ok {
		s.ratio("sample_ratio", &t.SampleRatio, rng)
	} else {
		t.SampleRatio = d.samplerFromEnv(b.DefRange)
	}

	if _, ok := s.str("service_name", &t.ServiceName); !ok {
		if _, set := s.has("service_name"); !set {
			t.ServiceName, _ = d.lookupEnv("OTEL_SERVICE_NAME")
		}
	}
	return t
}

// ratio sets *dst to a number between 0 and 1.
func (s *section) ratio(name string, dst *float64, rng hcl.Range) {
	raw, rng, ok := s.eval(name)
	if !ok {
		return
	}
	value, err := convert.Convert(raw, cty.Number)
	if err != nil {
		s.d.errorf(rng, "Incorrect attribute value type", "Inappropriate value for attribute %q: %s.", name, err)
		return
	}
	f, _ := value.AsBigFloat().Float64()
	if f < 0 || f > 1 {
		s.d.errorf(rng, "Invalid value", "%s must be between 0 and 1; got %s.", name, value.AsBigFloat().Text('g', 10))
		return
	}
	*dst = f
}

func (d *decoder) env(names ...string) (name, value string) {
	for _, name := range names {
		if value, ok := d.lookupEnv(name); ok && value != "" {
			return name, value
		}
	}
	return "", ""
}

func (d *decoder) tracingProtocolFromEnv(rng hcl.Range) string {
	name, value := d.env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	switch value {
	case "", ProtocolHTTP, ProtocolGRPC:
		return value
	}
	d.errorf(rng, "Invalid environment variable", "%s must be %q or %q for the tracing block; got %q.", name, ProtocolHTTP, ProtocolGRPC, value)
	return ""
}

// tracingEndpointFromEnv follows the OTLP exporter rules: the signal-specific variable is the
// full URL, the general one a base URL under which http/protobuf posts to /v1/traces.
func (d *decoder) tracingEndpointFromEnv(rng hcl.Range, protocol string) string {
	if name, value := d.env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); value != "" {
		if msg := checkCollectorURL(value); msg != "" {
			d.errorf(rng, "Invalid environment variable", "%s %s.", name, msg)
			return ""
		}
		return value
	}
	base := DefaultTracingHTTPEndpoint
	if protocol == ProtocolGRPC {
		base = DefaultTracingGRPCEndpoint
	}
	if name, value := d.env("OTEL_EXPORTER_OTLP_ENDPOINT"); value != "" {
		if msg := checkCollectorURL(value); msg != "" {
			d.errorf(rng, "Invalid environment variable", "%s %s.", name, msg)
			return ""
		}
		base = value
	}
	return signalURL(base, protocol)
}

// samplerFromEnv reads OTEL_TRACES_SAMPLER and its argument into a ratio; the router's sampler
// is always parent-based, so the parentbased_ and plain forms mean the same here.
func (d *decoder) samplerFromEnv(rng hcl.Range) float64 {
	_, sampler := d.env("OTEL_TRACES_SAMPLER")
	switch strings.TrimPrefix(sampler, "parentbased_") {
	case "", "always_on":
		return 1
	case "always_off":
		return 0
	case "traceidratio":
		_, arg := d.env("OTEL_TRACES_SAMPLER_ARG")
		if arg == "" {
			return 1
		}
		f, err := strconv.ParseFloat(arg, 64)
		if err != nil || f < 0 || f > 1 {
			d.errorf(rng, "Invalid environment variable", "OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1; got %q.", arg)
			return 1
		}
		return f
	}
	d.errorf(rng, "Invalid environment variable",
		"OTEL_TRACES_SAMPLER %q is not supported by the tracing block; use always_on, always_off or traceidratio (set sample_ratio instead).", sampler)
	return 1
}

// checkCollectorURL returns why raw is not an http(s) URL with a host, or "".
func checkCollectorURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Sprintf("must be a URL such as %q; got %q", DefaultTracingHTTPEndpoint, raw)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("must start with http:// or https://; got %q", raw)
	case u.Host == "":
		return fmt.Sprintf("must name a host; got %q", raw)
	}
	return ""
}

// signalURL is where spans go under a base URL: OTLP/HTTP posts to /v1/traces under it; gRPC
// uses the host and port only.
func signalURL(base, protocol string) string {
	if protocol == ProtocolGRPC {
		return base
	}
	return strings.TrimSuffix(base, "/") + tracesPath
}
