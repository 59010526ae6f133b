package tracing

import (
	"math"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// encoder writes an OTLP ExportTraceServiceRequest (opentelemetry/proto/collector/trace/v1) in
// the protobuf wire format straight from finished spans, into a buffer reused from batch to
// batch. The SDK's exporter first converts every span into generated protobuf structures (a
// dozen allocations per span, one per attribute and value) and then marshals those by
// reflection; the two together were most of tracing's CPU cost. What is written is what that
// path writes for the same spans, field for field (the conformance test decodes both and
// compares them).
//
// An encoder is not safe for concurrent use: the export queue has one goroutine.
type encoder struct {
	buf    []byte
	groups []spanGroup
	// The last resource seen and its encoded Resource message: the router's spans all share one.
	res      *resource.Resource
	resBytes []byte
}

// spanGroup is the spans of one resource and instrumentation scope, in the order they came:
// the request holds one ResourceSpans per resource with one ScopeSpans per scope.
type spanGroup struct {
	res   *resource.Resource
	key   attribute.Distinct
	scope instrumentation.Scope
	spans []sdktrace.ReadOnlySpan
}

// Field numbers of the OTLP messages written (opentelemetry-proto, trace/v1, common/v1,
// resource/v1, collector/trace/v1).
const (
	fRequestResourceSpans = 1

	fResourceSpansResource   = 1
	fResourceSpansScopeSpans = 2
	fResourceSpansSchemaURL  = 3

	fResourceAttributes = 1

	fScopeSpansScope     = 1
	fScopeSpansSpans     = 2
	fScopeSpansSchemaURL = 3

	fScopeName       = 1
	fScopeVersion    = 2
	fScopeAttributes = 3

	fSpanTraceID           = 1
	fSpanSpanID            = 2
	fSpanTraceState        = 3
	fSpanParentSpanID      = 4
	fSpanName              = 5
	fSpanKind              = 6
	fSpanStart             = 7
	fSpanEnd               = 8
	fSpanAttributes        = 9
	fSpanDroppedAttributes = 10
	fSpanEvents            = 11
	fSpanDroppedEvents     = 12
	fSpanLinks             = 13
	fSpanDroppedLinks      = 14
	fSpanStatus            = 15
	fSpanFlags             = 16

	fEventTime              = 1
	fEventName              = 2
	fEventAttributes        = 3
	fEventDroppedAttributes = 4

	fLinkTraceID           = 1
	fLinkSpanID            = 2
	fLinkAttributes        = 4
	fLinkDroppedAttributes = 5
	fLinkFlags             = 6

	fStatusMessage = 2
	fStatusCode    = 3

	fKeyValueKey   = 1
	fKeyValueValue = 2

	fAnyString = 1
	fAnyBool   = 2
	fAnyInt    = 3
	fAnyDouble = 4
	fAnyArray  = 5
	fAnyKVList = 6
	fAnyBytes  = 7

	fArrayValues  = 1
	fKVListValues = 1
)

// Span flags: the low 8 bits are the W3C trace flags; these say whether the parent (or a
// link's context) is remote, and that this is known.
const (
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

// encode returns the request for spans. The bytes are the encoder's buffer: valid until the
// next call.
func (e *encoder) encode(spans []sdktrace.ReadOnlySpan) []byte {
	e.group(spans)
	b := e.buf[:0]
	for i := 0; i < len(e.groups); {
		// One ResourceSpans per resource, with one ScopeSpans per scope of that resource.
		res := e.groups[i].key
		var rs int
		b, rs = beginMessage(b, fRequestResourceSpans)
		b = e.appendResource(b, e.groups[i].res)
		j := i
		for ; j < len(e.groups) && e.groups[j].key == res; j++ {
			b = appendScopeSpans(b, &e.groups[j])
		}
		if url := schemaURL(e.groups[i].res); url != "" {
			b = appendString(b, fResourceSpansSchemaURL, url)
		}
		b = endMessage(b, rs)
		i = j
	}
	for i := range e.groups {
		clear(e.groups[i].spans)
		e.groups[i] = spanGroup{spans: e.groups[i].spans[:0]}
	}
	e.groups = e.groups[:0]
	e.buf = b
	return b
}

// group sorts spans into groups by resource and scope, the groups of one resource next to each
// other, each group's spans in their original order.
func (e *encoder) group(spans []sdktrace.ReadOnlySpan) {
	var lastRes *resource.Resource
	var lastScope instrumentation.Scope
	last := -1
	for _, s := range spans {
		if s == nil {
			continue
		}
		res, scope := s.Resource(), s.InstrumentationScope()
		if last >= 0 && res == lastRes && scope == lastScope {
			e.groups[last].spans = append(e.groups[last].spans, s)
			continue
		}
		key := res.Equivalent()
		last = -1
		insert := len(e.groups) // after the last group of the same resource, or at the end
		for i := range e.groups {
			if e.groups[i].key != key {
				continue
			}
			insert = i + 1
			if e.groups[i].scope == scope {
				last = i
				break
			}
		}
		if last < 0 {
			n := len(e.groups)
			if n < cap(e.groups) {
				e.groups = e.groups[:n+1] // a slot of an earlier batch, with its spans slice's capacity
			} else {
				e.groups = append(e.groups, spanGroup{})
			}
			var own []sdktrace.ReadOnlySpan
			if insert == n {
				own = e.groups[n].spans[:0]
			} else {
				copy(e.groups[insert+1:], e.groups[insert:n])
			}
			e.groups[insert] = spanGroup{res: res, key: key, scope: scope, spans: own}
			last = insert
		}
		e.groups[last].spans = append(e.groups[last].spans, s)
		lastRes, lastScope = res, scope
	}
}

func schemaURL(res *resource.Resource) string {
	if res == nil {
		return ""
	}
	return res.SchemaURL()
}

// appendResource writes the Resource message, from the cache when res is the last one seen.
func (e *encoder) appendResource(b []byte, res *resource.Resource) []byte {
	if res == nil {
		return b // the SDK leaves the field out for a span without a resource
	}
	if res != e.res || e.resBytes == nil {
		var r []byte
		var m int
		r, m = beginMessage(r, fResourceSpansResource)
		for it := res.Iter(); it.Next(); {
			r = appendKeyValue(r, fResourceAttributes, it.Attribute())
		}
		e.resBytes = endMessage(r, m)
		e.res = res
	}
	return append(b, e.resBytes...)
}

func appendScopeSpans(b []byte, g *spanGroup) []byte {
	var m int
	b, m = beginMessage(b, fResourceSpansScopeSpans)
	b = appendScope(b, g.scope)
	for _, s := range g.spans {
		b = appendSpan(b, s)
	}
	b = appendString(b, fScopeSpansSchemaURL, g.scope.SchemaURL)
	return endMessage(b, m)
}

// appendScope writes a ScopeSpans' scope field.
func appendScope(b []byte, scope instrumentation.Scope) []byte {
	if scope == (instrumentation.Scope{}) { // the SDK leaves an empty scope out
		return b
	}
	var sc int
	b, sc = beginMessage(b, fScopeSpansScope)
	b = appendString(b, fScopeName, scope.Name)
	b = appendString(b, fScopeVersion, scope.Version)
	for it := scope.Attributes.Iter(); it.Next(); {
		b = appendKeyValue(b, fScopeAttributes, it.Attribute())
	}
	return endMessage(b, sc)
}

func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	var m int
	b, m = beginMessage(b, fScopeSpansSpans)
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytes(b, fSpanTraceID, tid[:])
	b = appendBytes(b, fSpanSpanID, sid[:])
	if ts := sc.TraceState(); ts.Len() > 0 {
		b = appendString(b, fSpanTraceState, ts.String())
	}
	parent := s.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		b = appendBytes(b, fSpanParentSpanID, psid[:])
	}
	if own, ok := s.(*finishedSpan); ok {
		b = appendString2(b, fSpanName, own.op, own.object) // its name without building it
	} else {
		b = appendString(b, fSpanName, s.Name())
	}
	b = appendVarint(b, fSpanKind, uint64(otlpKind(s.SpanKind())))
	b = appendFixed64(b, fSpanStart, unixNano(s.StartTime().UnixNano()))
	b = appendFixed64(b, fSpanEnd, unixNano(s.EndTime().UnixNano()))
	for _, a := range s.Attributes() {
		b = appendKeyValue(b, fSpanAttributes, a)
	}
	b = appendVarint(b, fSpanDroppedAttributes, clampUint32(s.DroppedAttributes()))
	for _, ev := range s.Events() {
		var em int
		b, em = beginMessage(b, fSpanEvents)
		b = appendFixed64(b, fEventTime, unixNano(ev.Time.UnixNano()))
		b = appendString(b, fEventName, ev.Name)
		for _, a := range ev.Attributes {
			b = appendKeyValue(b, fEventAttributes, a)
		}
		b = appendVarint(b, fEventDroppedAttributes, clampUint32(ev.DroppedAttributeCount))
		b = endMessage(b, em)
	}
	b = appendVarint(b, fSpanDroppedEvents, clampUint32(s.DroppedEvents()))
	for _, l := range s.Links() {
		var lm int
		b, lm = beginMessage(b, fSpanLinks)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		b = appendBytes(b, fLinkTraceID, ltid[:])
		b = appendBytes(b, fLinkSpanID, lsid[:])
		for _, a := range l.Attributes {
			b = appendKeyValue(b, fLinkAttributes, a)
		}
		b = appendVarint(b, fLinkDroppedAttributes, clampUint32(l.DroppedAttributeCount))
		b = appendFixed32(b, fLinkFlags, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
		b = endMessage(b, lm)
	}
	b = appendVarint(b, fSpanDroppedLinks, clampUint32(s.DroppedLinks()))
	// The status is always present, empty when unset, as the SDK writes it.
	st := s.Status()
	var stm int
	b, stm = beginMessage(b, fSpanStatus)
	b = appendString(b, fStatusMessage, st.Description)
	b = appendVarint(b, fStatusCode, uint64(otlpStatus(st.Code)))
	b = endMessage(b, stm)
	b = appendFixed32(b, fSpanFlags, spanFlags(sc.TraceFlags(), parent))
	return endMessage(b, m)
}

// spanFlags are the W3C flags with whether ctx (the parent, or a link's context) is remote.
func spanFlags(f trace.TraceFlags, ctx trace.SpanContext) uint32 {
	flags := uint32(f) | flagHasIsRemote
	if ctx.IsRemote() {
		flags |= flagIsRemote
	}
	return flags
}

// otlpKind is the Span.SpanKind enum's number.
func otlpKind(k trace.SpanKind) int {
	switch k {
	case trace.SpanKindInternal:
		return 1
	case trace.SpanKindServer:
		return 2
	case trace.SpanKindClient:
		return 3
	case trace.SpanKindProducer:
		return 4
	case trace.SpanKindConsumer:
		return 5
	}
	return 0
}

// otlpStatus is the Status.StatusCode enum's number.
func otlpStatus(c codes.Code) int {
	switch c {
	case codes.Ok:
		return 1
	case codes.Error:
		return 2
	}
	return 0
}

func unixNano(n int64) uint64 { return uint64(max(0, n)) }

func clampUint32(v int) uint64 {
	return uint64(min(max(v, 0), math.MaxUint32))
}

func appendKeyValue(b []byte, field protowire.Number, kv attribute.KeyValue) []byte {
	// The router's attributes are strings, integers and booleans: their sizes are known ahead,
	// so they are written without reserving lengths and moving what follows (endMessage).
	var value uint64 // the AnyValue's contents: its one field, tag included
	switch kv.Value.Type() {
	case attribute.STRING:
		n := len(kv.Value.AsString())
		value = 1 + uint64(protowire.SizeVarint(uint64(n))+n)
	case attribute.INT64:
		value = 1 + uint64(protowire.SizeVarint(uint64(kv.Value.AsInt64())))
	case attribute.BOOL:
		value = 2
	default:
		return appendKeyValueAny(b, field, kv)
	}
	key := len(kv.Key)
	keyField := 0
	if key > 0 { // proto3: an empty key is left out
		keyField = 1 + protowire.SizeVarint(uint64(key)) + key
	}
	inner := uint64(keyField) + 1 + uint64(protowire.SizeVarint(value)) + value
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, inner)
	if key > 0 {
		b = protowire.AppendTag(b, fKeyValueKey, protowire.BytesType)
		b = protowire.AppendString(b, string(kv.Key))
	}
	b = protowire.AppendTag(b, fKeyValueValue, protowire.BytesType)
	b = protowire.AppendVarint(b, value)
	switch kv.Value.Type() {
	case attribute.STRING:
		b = protowire.AppendTag(b, fAnyString, protowire.BytesType)
		b = protowire.AppendString(b, kv.Value.AsString())
	case attribute.INT64:
		b = protowire.AppendTag(b, fAnyInt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(kv.Value.AsInt64()))
	default: // BOOL
		b = protowire.AppendTag(b, fAnyBool, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(kv.Value.AsBool()))
	}
	return b
}

// appendKeyValueAny is appendKeyValue for any type of value.
func appendKeyValueAny(b []byte, field protowire.Number, kv attribute.KeyValue) []byte {
	var m int
	b, m = beginMessage(b, field)
	b = appendString(b, fKeyValueKey, string(kv.Key))
	b = appendAnyValue(b, fKeyValueValue, kv.Value)
	return endMessage(b, m)
}

// appendAnyValue writes an AnyValue message. Its value is a oneof: unlike a plain proto3 field,
// a zero value (false, 0, "") is written, since its presence is the information.
func appendAnyValue(b []byte, field protowire.Number, v attribute.Value) []byte {
	var m int
	b, m = beginMessage(b, field)
	switch v.Type() {
	case attribute.BOOL:
		b = protowire.AppendTag(b, fAnyBool, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = protowire.AppendTag(b, fAnyInt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = protowire.AppendTag(b, fAnyDouble, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		b = protowire.AppendTag(b, fAnyString, protowire.BytesType)
		b = protowire.AppendString(b, v.AsString())
	case attribute.BYTESLICE:
		b = protowire.AppendTag(b, fAnyBytes, protowire.BytesType)
		b = protowire.AppendBytes(b, v.AsByteSlice())
	case attribute.BOOLSLICE:
		b = appendArray(b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		b = appendArray(b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		b = appendArray(b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		b = appendArray(b, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		b = appendArray(b, v.AsSlice(), func(x attribute.Value) attribute.Value { return x })
	case attribute.MAP:
		var a int
		b, a = beginMessage(b, fAnyKVList)
		for _, kv := range v.AsMap() {
			b = appendKeyValue(b, fKVListValues, kv)
		}
		b = endMessage(b, a)
	case attribute.EMPTY:
	default:
		b = protowire.AppendTag(b, fAnyString, protowire.BytesType)
		b = protowire.AppendString(b, "INVALID")
	}
	return endMessage(b, m)
}

// beginMessage writes the tag of a length-delimited field and one byte for the length, and
// returns where the message's contents start. endMessage writes the length there; most
// messages (attributes, values, status) are under 128 bytes and need no more than that byte.
func beginMessage(b []byte, field protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = append(b, 0)
	return b, len(b)
}

// endMessage sets the length of the message that starts at start, moving the contents when the
// length takes more than the one byte reserved.
func endMessage(b []byte, start int) []byte {
	n := len(b) - start
	if n < 0x80 {
		b[start-1] = byte(n)
		return b
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	b = append(b, make([]byte, extra)...)
	copy(b[start+extra:], b[start:start+n])
	protowire.AppendVarint(b[:start-1], uint64(n))
	return b
}

// appendString, appendBytes, appendVarint and the fixed forms write a proto3 scalar field,
// leaving it out when it has its zero value, as proto.Marshal does.
func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendString2 is appendString of s1+s2.
func appendString2(b []byte, field protowire.Number, s1, s2 string) []byte {
	if s1 == "" && s2 == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(s1)+len(s2)))
	return append(append(b, s1...), s2...)
}

func appendBytes(b []byte, field protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarint(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendFixed64(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

func appendFixed32(b []byte, field protowire.Number, v uint32) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, v)
}

// appendArray appends xs as an ArrayValue field of an AnyValue, each element made a value by
// value.
func appendArray[T any](b []byte, xs []T, value func(T) attribute.Value) []byte {
	b, a := beginMessage(b, fAnyArray)
	for _, x := range xs {
		b = appendAnyValue(b, fArrayValues, value(x))
	}
	return endMessage(b, a)
}
