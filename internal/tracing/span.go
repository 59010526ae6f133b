package tracing

import (
	"context"
	"strings"
	"sync"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// span is one of the router's spans, recorded without the SDK's general-purpose span: the
// router makes three or four spans per event, each with a known, small set of attributes, and
// the SDK's span costs several allocations each (its attribute slice grown twice, a map to
// deduplicate the keys at the end, a snapshot copy for the processor). A span here holds its
// attributes in itself, is itself the finished span the exporter reads, and goes back to a pool
// once encoded, as it ends, for the router's exporter (spanPool, processor.go), so that
// recording allocates nothing.
//
// The router hands a span from goroutine to goroutine (the receive span is started by the
// consumer and ended by the acker, through a channel), never uses it from two at once, and
// does not touch it after End (the span may already be recycled then); so, unlike the SDK's,
// it takes no lock.
type span struct {
	embedded.Span
	// ReadOnlySpan has an unexported method so that only the SDK can implement it; embedding
	// the interface (nil) gives a span that method, as the SDK's own tracetest package does.
	// Every other method is this type's.
	sdktrace.ReadOnlySpan

	spanFields
	// attrBuf holds the attributes: no span of the router has more (spans.go counts them).
	attrBuf [maxSpanAttrs]attribute.KeyValue
	// strBuf holds copies of the strings an attribute would otherwise share with a logged
	// record (own), so that a span waiting for export does not keep the record alive (only
	// with an exporter other than the router's, which queues the spans themselves).
	strBuf [spanStrBytes]byte
}

// spanStrBytes is room for a send span's message id and routing key, as they usually are;
// longer ones are copied to the heap. With it a span is 1,536 bytes, a size class of Go's
// allocator, as it was without (recycle_test.go checks); more would make it 1,792.
const spanStrBytes = 160

// spanFields are a span's fields but its attributes' storage, apart so that recycling a span
// clears them and only the attributes it used.
type spanFields struct {
	t *Tracer
	// The name is op+object ("send " and "orders"), kept in two parts so that no string is
	// built per span: the encoder writes both (otlpenc.go).
	op, object string
	kind       trace.SpanKind
	sc, parent trace.SpanContext
	start, end time.Time
	attrs      []attribute.KeyValue // attrBuf's, unless a span outgrows it
	links      []sdktrace.Link
	status     sdktrace.Status
	children   int
	strUsed    int  // bytes of strBuf in use
	recording  bool // sampled and not ended yet
	ended      bool
}

// maxSpanAttrs is the most attributes one of the router's spans gets (a replay's process span
// and a dead-lettered send span: 14); a span with more grows a slice on the heap.
const maxSpanAttrs = 16

// spanPool holds spans to record again. A span goes back once the processor has encoded it
// for the router's own exporter (or dropped it), never while anything else may read it.
var spanPool = sync.Pool{New: func() any { return new(span) }}

// startSpan starts span op+object of trace parent (a new trace when parent is not valid),
// with random ids unless ids are given. Sampling follows the configured sampler:
// parent-based, the ratio for a new trace.
func (t *Tracer) startSpan(op, object string, kind trace.SpanKind, parent trace.SpanContext, ids *derivedIDs, start time.Time, attrs ...attribute.KeyValue) *span {
	cfg := trace.SpanContextConfig{}
	switch {
	case parent.IsValid() && ids != nil:
		cfg.TraceID, cfg.SpanID = parent.TraceID(), ids.span
	case parent.IsValid():
		cfg.TraceID, cfg.SpanID = parent.TraceID(), randomSpanID()
	case ids != nil:
		cfg.TraceID, cfg.SpanID = ids.trace, ids.span
	default:
		cfg.TraceID, cfg.SpanID = randomIDs()
	}
	if parent.IsValid() {
		cfg.TraceState = parent.TraceState()
		if parent.IsSampled() {
			cfg.TraceFlags = trace.FlagsSampled
		}
	} else if t.sampleRoot(cfg.TraceID) {
		cfg.TraceFlags = trace.FlagsSampled
	}
	s := spanPool.Get().(*span)
	s.ended = false
	s.t, s.op, s.object, s.kind, s.sc, s.parent, s.start = t, op, object, kind, trace.NewSpanContext(cfg), parent, start
	if !s.sc.IsSampled() {
		// Not recorded: it only carries its context to the copies and children. It never
		// reaches the export queue, and so never goes back to the pool: the collector frees it.
		return s
	}
	s.recording = true
	if s.start.IsZero() {
		s.start = time.Now()
	}
	// The callers (spans.go) give distinct keys: no need to look for one already there.
	s.attrs = s.attrBuf[:0]
	for _, a := range attrs {
		if a.Valid() {
			s.attrs = append(s.attrs, a)
		}
	}
	return s
}

// sampleRoot is the sampler's decision for a new trace (the configured ratio).
func (t *Tracer) sampleRoot(id trace.TraceID) bool {
	res := t.root.ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: id})
	return res.Decision == sdktrace.RecordAndSample
}

// End finishes the span and hands it to the export queue.
func (s *span) End(...trace.SpanEndOption) {
	s.check()
	s.ended = true
	if !s.recording {
		return
	}
	s.recording = false
	s.end = time.Now()
	if s.end.Before(s.start) { // a receive span starts at the event's ingest time, from another clock reading
		s.end = s.start
	}
	s.t.proc.OnEnd((*finishedSpan)(s))
}

// check panics when the span is used after its End, in builds with the race detector
// (spancheck_race.go): the span may be recycled by then (spanPool), so such a use would read,
// or write, another event's span. Other builds compile it away.
func (s *span) check() {
	if checkSpans && s.ended {
		panic("tracing: span " + s.op + s.object + " used after its End")
	}
}

// SetAttributes adds attributes, replacing the value of a key the span already has.
func (s *span) SetAttributes(kv ...attribute.KeyValue) {
	s.check()
	if !s.recording {
		return
	}
next:
	for _, a := range kv {
		if !a.Valid() {
			continue
		}
		for i := range s.attrs {
			if s.attrs[i].Key == a.Key {
				s.attrs[i] = a
				continue next
			}
		}
		s.attrs = append(s.attrs, a)
	}
}

// SetStatus sets the status: an error (with its description) overrides unset, ok overrides
// both, as the SDK's spans do.
func (s *span) SetStatus(code codes.Code, description string) {
	s.check()
	if !s.recording || code < s.status.Code {
		return
	}
	s.status = sdktrace.Status{Code: code}
	if code == codes.Error {
		s.status.Description = description
	}
}

func (s *span) SpanContext() trace.SpanContext { s.check(); return s.sc }
func (s *span) IsRecording() bool              { s.check(); return s.recording }
func (s *span) SetName(name string) {
	s.check()
	if s.recording {
		s.op, s.object = name, ""
	}
}
func (s *span) AddLink(l trace.Link) {
	s.check()
	if s.recording && l.SpanContext.IsValid() {
		s.links = append(s.links, sdktrace.Link{SpanContext: l.SpanContext, Attributes: l.Attributes})
	}
}

// AddEvent and RecordError are not used by the router: its spans carry no events.
func (s *span) AddEvent(string, ...trace.EventOption)   {}
func (s *span) RecordError(error, ...trace.EventOption) {}

// TracerProvider is a no-op provider: the router makes its spans through Tracer only.
func (s *span) TracerProvider() trace.TracerProvider { return noop.NewTracerProvider() }

// finishedSpan is a span after its End, as the processor and the exporter read it: the same
// memory under another type, so that its reads are not the router's (which check).
type finishedSpan span

var _ sdktrace.ReadOnlySpan = (*finishedSpan)(nil)

// release returns a finished span to the pool. Clearing it here also lets the race detector
// see a use of the span after its End from another goroutine.
func (s *finishedSpan) release() {
	clear(s.attrBuf[:min(len(s.attrs), maxSpanAttrs)])
	s.spanFields = spanFields{ended: true}
	spanPool.Put((*span)(s))
}

func (s *finishedSpan) SpanContext() trace.SpanContext { return s.sc }

func (s *finishedSpan) Name() string                                { return s.op + s.object }
func (s *finishedSpan) Parent() trace.SpanContext                   { return s.parent }
func (s *finishedSpan) SpanKind() trace.SpanKind                    { return s.kind }
func (s *finishedSpan) StartTime() time.Time                        { return s.start }
func (s *finishedSpan) EndTime() time.Time                          { return s.end }
func (s *finishedSpan) Attributes() []attribute.KeyValue            { return s.attrs }
func (s *finishedSpan) Links() []sdktrace.Link                      { return s.links }
func (s *finishedSpan) Events() []sdktrace.Event                    { return nil }
func (s *finishedSpan) Status() sdktrace.Status                     { return s.status }
func (s *finishedSpan) Resource() *resource.Resource                { return s.t.resource }
func (s *finishedSpan) DroppedAttributes() int                      { return 0 }
func (s *finishedSpan) DroppedLinks() int                           { return 0 }
func (s *finishedSpan) DroppedEvents() int                          { return 0 }
func (s *finishedSpan) ChildSpanCount() int                         { return s.children }
func (s *finishedSpan) InstrumentationScope() instrumentation.Scope { return s.t.scope }

// InstrumentationLibrary is the deprecated form of InstrumentationScope, which the interface
// still requires.
func (s *finishedSpan) InstrumentationLibrary() instrumentation.Library { //nolint:staticcheck // required by ReadOnlySpan
	return instrumentation.Library(s.t.scope) //nolint:staticcheck // required by ReadOnlySpan
}

// own returns a copy of v that shares no memory with v: in the span's strBuf while there is
// room, else on the heap. The copy lives as long as the span's record does (until release).
func (s *span) own(v string) string {
	if len(v) == 0 {
		return ""
	}
	if len(v) > len(s.strBuf)-s.strUsed {
		return strings.Clone(v)
	}
	b := s.strBuf[s.strUsed : s.strUsed+len(v)]
	copy(b, v)
	s.strUsed += len(v)
	return unsafe.String(&b[0], len(b))
}
