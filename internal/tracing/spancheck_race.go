//go:build race

package tracing

// checkSpans: with the race detector, a span used after its End panics (span.check).
const checkSpans = true
