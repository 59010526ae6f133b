package tracing

import (
	"context"
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

type derivedIDsKey struct{}

// deriveIDs hashes what the log keeps of an event and never changes: its message id (the
// publisher's, or the one assigned at ingest), source and ingest time. Any later reader of the
// logged event computes the same ids.
func deriveIDs(ev *event.Event) derivedIDs {
	h := sha256.New()
	h.Write([]byte(ev.Props.MessageID))
	h.Write([]byte{0})
	h.Write([]byte(ev.Source))
	h.Write([]byte{0})
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(ev.IngestTime.UnixNano()))
	h.Write(ts[:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
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

// idGenerator gives a receive span its derived ids (carried in the context StartReceive makes)
// and every other span random ones.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if ids, ok := ctx.Value(derivedIDsKey{}).(derivedIDs); ok {
		return ids.trace, ids.span
	}
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, randomSpanID()
}

func (idGenerator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if ids, ok := ctx.Value(derivedIDsKey{}).(derivedIDs); ok {
		return ids.span
	}
	return randomSpanID()
}

func randomSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.BigEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
