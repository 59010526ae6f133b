package bench

import (
	"bytes"
	"net/http"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// The sink counts the spans of a request without decoding them: every span of every scope of
// every resource, whatever else the request holds.
func TestOTLPSinkCountsSpans(t *testing.T) {
	attr := []*commonpb.KeyValue{{Key: "k", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "v"}}}}
	spans := func(n int) []*tracepb.Span {
		var out []*tracepb.Span
		for range n {
			out = append(out, &tracepb.Span{
				TraceId: bytes.Repeat([]byte{1}, 16), SpanId: bytes.Repeat([]byte{2}, 8), Name: "send x",
				Attributes: attr, Links: []*tracepb.Span_Link{{TraceId: bytes.Repeat([]byte{3}, 16), Attributes: attr}},
				Events: []*tracepb.Span_Event{{Name: "e", Attributes: attr}},
			})
		}
		return out
	}
	req := &collectortrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{Resource: &resourcepb.Resource{Attributes: attr}, SchemaUrl: "s", ScopeSpans: []*tracepb.ScopeSpans{
			{Scope: &commonpb.InstrumentationScope{Name: "a", Attributes: attr}, Spans: spans(3)},
			{Scope: &commonpb.InstrumentationScope{Name: "b"}, Spans: spans(5)},
		}},
		{Resource: &resourcepb.Resource{}, ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans(7)}, {}}},
		{},
	}}
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := countSpans(body); err != nil || n != 15 {
		t.Fatalf("countSpans = %d, %v; want 15", n, err)
	}
	if _, err := countSpans(body[:len(body)-3]); err == nil {
		t.Error("a truncated request was counted")
	}

	sink, err := StartOTLPSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	for range 2 {
		resp, err := http.Post(sink.URL+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if got := sink.Spans(); got != 30 {
		t.Errorf("the sink counted %d spans in two requests of 15, want 30", got)
	}
	resp, err := http.Post(sink.URL+"/v1/traces", "application/x-protobuf", bytes.NewReader([]byte{0xff}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a malformed request answered %d, want 400", resp.StatusCode)
	}
}

// BenchmarkOTLPSinkRequest is the sink's work on one request of 512 spans with ten attributes
// each, about what the router sends: counting (what it does) against decoding with the
// generated types (what it did, and what a collector does).
func BenchmarkOTLPSinkRequest(b *testing.B) {
	var spans []*tracepb.Span
	for i := range 512 {
		var attrs []*commonpb.KeyValue
		for j := range 10 {
			attrs = append(attrs, &commonpb.KeyValue{Key: "messaging.attribute." + string(rune('a'+j)),
				Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "value-of-the-attribute"}}})
		}
		spans = append(spans, &tracepb.Span{TraceId: bytes.Repeat([]byte{1}, 16), SpanId: bytes.Repeat([]byte{byte(i)}, 8),
			ParentSpanId: bytes.Repeat([]byte{2}, 8), Name: "send orders", Kind: tracepb.Span_SPAN_KIND_PRODUCER,
			StartTimeUnixNano: 1, EndTimeUnixNano: 2, Attributes: attrs})
	}
	body, err := proto.Marshal(&collectortrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{Resource: &resourcepb.Resource{}, ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}}}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("count", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if n, err := countSpans(body); err != nil || n != 512 {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var req collectortrace.ExportTraceServiceRequest
			if err := proto.Unmarshal(body, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
