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
