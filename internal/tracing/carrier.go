package tracing

import (
	"encoding/hex"

	"go.opentelemetry.io/otel/trace"
)

// The W3C trace context headers are read and written directly rather than through the SDK's
// propagator and a context: this runs for every event and every copy.

// headerString reads a header written as a string; publishers write these as AMQP strings, and
// a byte array (AMQP's other string type) is read too.
func headerString(headers map[string]any, name string) string {
	switch v := headers[name].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

// extract returns the trace context headers carry; not valid when they carry none, or a
// malformed one (which W3C Trace Context says to ignore, with its tracestate).
func extract(headers map[string]any) trace.SpanContext {
	tp := headerString(headers, HeaderTraceparent)
	if tp == "" {
		return trace.SpanContext{}
	}
	cfg, ok := parseTraceparent(tp)
	if !ok {
		return trace.SpanContext{}
	}
	cfg.Remote = true
	if ts := headerString(headers, HeaderTracestate); ts != "" {
		// An invalid tracestate is dropped; the traceparent stands.
		cfg.TraceState, _ = trace.ParseTraceState(ts)
	}
	return trace.NewSpanContext(cfg)
}

// parseTraceparent reads "VERSION-TRACEID-SPANID-FLAGS" (lower-case hex). Version 00 has exactly
// these four fields; a later version may add more after a dash, which are ignored.
func parseTraceparent(tp string) (trace.SpanContextConfig, bool) {
	var cfg trace.SpanContextConfig
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return cfg, false
	}
	version := tp[:2]
	if !isLowerHex(version) || version == "ff" || (version == "00" && len(tp) != 55) || (len(tp) > 55 && tp[55] != '-') {
		return cfg, false
	}
	var flags [1]byte
	if !decodeHex(cfg.TraceID[:], tp[3:35]) || !decodeHex(cfg.SpanID[:], tp[36:52]) || !decodeHex(flags[:], tp[53:55]) {
		return cfg, false
	}
	if !cfg.TraceID.IsValid() || !cfg.SpanID.IsValid() {
		return cfg, false
	}
	cfg.TraceFlags = trace.TraceFlags(flags[0]) & trace.FlagsSampled
	return cfg, true
}

func decodeHex(dst []byte, s string) bool {
	if !isLowerHex(s) {
		return false
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// inject writes sc into headers as traceparent, and tracestate when the trace has one,
// replacing any trace context they had.
func inject(sc trace.SpanContext, headers map[string]any) {
	var buf [55]byte
	copy(buf[:], "00-")
	tid, sid := sc.TraceID(), sc.SpanID()
	hex.Encode(buf[3:35], tid[:])
	buf[35] = '-'
	hex.Encode(buf[36:52], sid[:])
	buf[52] = '-'
	hex.Encode(buf[53:55], []byte{byte(sc.TraceFlags() & trace.FlagsSampled)})
	headers[HeaderTraceparent] = string(buf[:])
	if ts := sc.TraceState(); ts.Len() > 0 {
		headers[HeaderTracestate] = ts.String()
	} else {
		delete(headers, HeaderTracestate)
	}
}

// Extract returns the trace context of AMQP headers, for tests and tools.
func Extract(headers map[string]any) trace.SpanContext { return extract(headers) }
