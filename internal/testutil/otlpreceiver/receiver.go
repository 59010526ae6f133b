// Package otlpreceiver is an OTLP/HTTP (or OTLP/gRPC) trace collector for tests: it decodes the
// protobuf export requests with the OTLP proto package and keeps the spans, so that a test can
// check what a router exported. It can also answer slowly, to stand for a collector in trouble.
package otlpreceiver

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"

	"github.com/wasmrouter/wasmrouter/internal/testutil/otlpbody"
)

// Span is an exported span, flattened for assertions. Ids are lower-case hex.
type Span struct {
	Service       string
	Name          string
	Kind          tracepb.Span_SpanKind
	TraceID       string
	SpanID        string
	ParentSpanID  string         // "" for a root
	Attrs         map[string]any // string, int64, float64 or bool
	StatusCode    tracepb.Status_StatusCode
	StatusMessage string
	Links         []Link
}

// Link is a span link.
type Link struct {
	TraceID, SpanID string
	Attrs           map[string]any
}

func (s Span) String() string {
	return fmt.Sprintf("%s %s trace=%s span=%s parent=%s status=%v %v", s.Kind, s.Name, s.TraceID, s.SpanID, s.ParentSpanID, s.StatusCode, s.Attrs)
}

// Receiver is a running collector.
type Receiver struct {
	// URL is the base URL, as for the tracing block's endpoint (spans are posted under /v1/traces).
	URL string

	srv     *httptest.Server
	mu      sync.Mutex
	spans   []Span
	changed chan struct{} // closed and replaced whenever spans arrive
	slow    chan struct{} // non-nil: requests wait for it to close
	once    sync.Once

	grpc         *grpc.Server // an OTLP/gRPC collector (StartGRPC) instead of srv
	metadata     []metadata.MD
	compressions []string
}

// Start runs a collector that answers at once; it stops when the test ends.
func Start(t testing.TB) *Receiver { return start(t, false) }

// StartSlow runs a collector that accepts connections but answers no request until the test
// ends (or the client gives up): a collector that is overloaded.
func StartSlow(t testing.TB) *Receiver { return start(t, true) }

func start(t testing.TB, slow bool) *Receiver {
	r := &Receiver{changed: make(chan struct{})}
	if slow {
		r.slow = make(chan struct{})
	}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL
	t.Cleanup(r.Close)
	return r
}

// StartGRPC runs an OTLP/gRPC collector (the TraceService) that answers at once; URL is
// http://host:port, as for a tracing block with protocol "grpc". Each call's metadata is kept
// (Metadata) and its compression (Compressions).
func StartGRPC(t testing.TB) *Receiver {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{changed: make(chan struct{}), URL: "http://" + l.Addr().String()}
	svc := &traceService{r: r}
	r.grpc = grpc.NewServer(grpc.StatsHandler(svc))
	collectortrace.RegisterTraceServiceServer(r.grpc, svc)
	go func() { _ = r.grpc.Serve(l) }()
	t.Cleanup(r.Close)
	return r
}

// traceService receives the gRPC export calls.
type traceService struct {
	collectortrace.UnimplementedTraceServiceServer
	r *Receiver
}

func (s *traceService) Export(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.r.mu.Lock()
	s.r.metadata = append(s.r.metadata, md)
	s.r.mu.Unlock()
	s.r.add(flatten(req))
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// The stats.Handler methods see each call's grpc-encoding, which the metadata leaves out.
func (s *traceService) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (s *traceService) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (s *traceService) HandleConn(context.Context, stats.ConnStats) {}
func (s *traceService) HandleRPC(_ context.Context, st stats.RPCStats) {
	if h, ok := st.(*stats.InHeader); ok {
		s.r.mu.Lock()
		s.r.compressions = append(s.r.compressions, h.Compression)
		s.r.mu.Unlock()
	}
}

// Metadata is the metadata of each gRPC export call so far.
func (r *Receiver) Metadata() []metadata.MD {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]metadata.MD(nil), r.metadata...)
}

// Compressions is the grpc-encoding of each gRPC export call so far ("" for none).
func (r *Receiver) Compressions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.compressions...)
}

// Close stops the collector; slow requests are released first.
func (r *Receiver) Close() {
	r.once.Do(func() {
		if r.grpc != nil {
			r.grpc.Stop()
			return
		}
		if r.slow != nil {
			close(r.slow)
		}
		r.srv.CloseClientConnections()
		r.srv.Close()
	})
}

// DownURL is the base URL of a collector that is not running: nothing listens there.
func DownURL(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if r.slow != nil {
		select {
		case <-r.slow:
		case <-req.Context().Done():
		}
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return
	}
	if req.URL.Path != "/v1/traces" || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	body, err := otlpbody.Reader(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var export collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &export); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(flatten(&export))
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (r *Receiver) add(spans []Span) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, spans...)
	close(r.changed)
	r.changed = make(chan struct{})
}

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// WaitFor waits until cond holds for the spans received, at most timeout, and returns them; the
// test fails if it never holds.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, cond func([]Span) bool) []Span {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		spans, changed := append([]Span(nil), r.spans...), r.changed
		r.mu.Unlock()
		if cond(spans) {
			return spans
		}
		select {
		case <-changed:
		case <-deadline.C:
			var b strings.Builder
			for _, s := range spans {
				fmt.Fprintf(&b, "\n  %s", s)
			}
			t.Fatalf("collector: %s did not happen within %s; got %d spans:%s", what, timeout, len(spans), b.String())
		}
	}
}

// Find returns the spans whose name is name, in arrival order.
func Find(spans []Span, name string) []Span {
	var out []Span
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// ByID returns the span with that id, if received.
func ByID(spans []Span, id string) (Span, bool) {
	for _, s := range spans {
		if s.SpanID == id {
			return s, true
		}
	}
	return Span{}, false
}

func flatten(req *collectortrace.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range req.GetResourceSpans() {
		service, _ := attrMap(rs.GetResource().GetAttributes())["service.name"].(string)
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				span := Span{
					Service:       service,
					Name:          s.GetName(),
					Kind:          s.GetKind(),
					TraceID:       hex.EncodeToString(s.GetTraceId()),
					SpanID:        hex.EncodeToString(s.GetSpanId()),
					ParentSpanID:  hex.EncodeToString(s.GetParentSpanId()),
					Attrs:         attrMap(s.GetAttributes()),
					StatusCode:    s.GetStatus().GetCode(),
					StatusMessage: s.GetStatus().GetMessage(),
				}
				for _, l := range s.GetLinks() {
					span.Links = append(span.Links, Link{
						TraceID: hex.EncodeToString(l.GetTraceId()),
						SpanID:  hex.EncodeToString(l.GetSpanId()),
						Attrs:   attrMap(l.GetAttributes()),
					})
				}
				out = append(out, span)
			}
		}
	}
	return out
}

func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = x.IntValue
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = x.DoubleValue
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = x.BoolValue
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}
