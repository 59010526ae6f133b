package tracing

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"

	"github.com/wasmrouter/wasmrouter/event"
)

// derivedIDs are the ids a receive span takes from its event: the trace id serves when the
// source message carried no trace context.
type derivedIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

// deriveIDs hashes what the log keeps of an event and never changes: its message id (the
// publisher's, or the one assigned at ingest), source and ingest time. Any later reader of the
// logged event computes the same ids.
func deriveIDs(ev *event.Event) derivedIDs {
	// One buffer on the stack for the usual sizes, hashed at once: sha256.New would be one
	// allocation per call, and this runs twice per event and route.
	var buf [256]byte
	b := append(buf[:0], ev.Props.MessageID...)
	b = append(b, 0)
	b = append(b, ev.Source...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(ev.IngestTime.UnixNano()))
	sum := sha256.Sum256(b)
	var ids derivedIDs
	copy(ids.trace[:], sum[:16])
	copy(ids.span[:], sum[16:24])
	if !ids.trace.IsValid() { // all zeros: never in practice, but the ids must be valid
		ids.trace[15] = 1
	}
	if !ids.span.IsValid() {
		ids.span[7] = 1
	}
	return ids
}

// randomIDs are the ids of a span that starts a new trace.
func randomIDs() (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, randomSpanID()
}

func randomSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.BigEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
