//go:build !race

package tracing

// checkSpans: without the race detector, spans are not checked for a use after their End
// (spancheck_race.go).
const checkSpans = false
