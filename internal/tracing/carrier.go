package tracing

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// headerCarrier reads and writes W3C trace context in AMQP headers. Publishers write the headers
// as strings; a byte array (AMQP's other string type) is read too.
type headerCarrier map[string]any

func (c headerCarrier) Get(key string) string {
	switch v := c[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

func (c headerCarrier) Set(key, value string) { c[key] = value }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

var traceContext propagation.TraceContext

// extract returns the trace context headers carry; not valid when they carry none (or a
// malformed one, which W3C says to ignore).
func extract(headers map[string]any) trace.SpanContext {
	if headers == nil {
		return trace.SpanContext{}
	}
	if _, ok := headers[HeaderTraceparent]; !ok {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(traceContext.Extract(context.Background(), headerCarrier(headers)))
}

// inject writes sc into headers, replacing any trace context they had.
func inject(sc trace.SpanContext, headers map[string]any) {
	delete(headers, HeaderTracestate)
	traceContext.Inject(trace.ContextWithSpanContext(context.Background(), sc), headerCarrier(headers))
}

// Extract returns the trace context of AMQP headers, for tests and tools.
func Extract(headers map[string]any) trace.SpanContext { return extract(headers) }
