package tracing

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/otlpbody"
)

// fastRetries makes the exporter's backoff milliseconds long for the test.
func fastRetries(t *testing.T) {
	init, maxI := retryInitial, retryMax
	retryInitial, retryMax = time.Millisecond, 5*time.Millisecond
	t.Cleanup(func() { retryInitial, retryMax = init, maxI })
}

// someSpans are the four spans of one delivery.
func someSpans(t *testing.T) []sdktrace.ReadOnlySpan {
	t.Helper()
	tr, k := keepingTracer(t, "edge")
	deliver(tr, testEvent(event.Table{"traceparent": sourceParent}), false)
	return flushKept(t, tr, k)
}

// collector is an OTLP/HTTP collector whose answers the test scripts; it keeps every request.
type collector struct {
	mu       sync.Mutex
	requests []*http.Request
	bodies   [][]byte
	answer   func(n int, w http.ResponseWriter) // n counts requests from 1
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := otlpbody.Reader(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.requests = append(c.requests, r)
	c.bodies = append(c.bodies, b)
	n := len(c.requests)
	c.mu.Unlock()
	if c.answer != nil {
		c.answer(n, w)
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.requests)
}

func newHTTPExporter(t *testing.T, endpoint string) *otlpExporter {
	t.Helper()
	x, err := newOTLPExporter(config.TracingSpec{Endpoint: endpoint, Protocol: config.ProtocolHTTP}, "9.9", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Shutdown(context.Background()) })
	return x
}

// Headers and gzip from the variables, the traces-specific ones first; the body is the
// encoder's request.
func TestOTLPHTTPHeadersAndCompression(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-general=1")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "Authorization=Bearer%20s3cret, x-tenant = acme ,bad header=1,novalue")
	t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	x := newHTTPExporter(t, srv.URL+"/v1/traces")
	spans := someSpans(t)
	if err := x.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	if c.count() != 1 {
		t.Fatalf("%d requests", c.count())
	}
	r := c.requests[0]
	for k, want := range map[string]string{
		"Authorization": "Bearer s3cret", "X-Tenant": "acme", "X-General": "", "Content-Encoding": "gzip",
		"Content-Type": "application/x-protobuf", "User-Agent": "wasmrouter/9.9",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if r.URL.Path != "/v1/traces" || r.Method != http.MethodPost {
		t.Errorf("%s %s", r.Method, r.URL.Path)
	}
	var enc encoder
	if got, want := decodeRequest(t, c.bodies[0]), decodeRequest(t, enc.encode(spans)); !proto.Equal(got, want) {
		t.Error("the body is not the encoded request")
	}
}

// A collector that answers 429, 502, 503 or 504 is tried again, after its Retry-After; any
// other refusal fails the export at once.
func TestOTLPHTTPRetries(t *testing.T) {
	fastRetries(t)
	for _, code := range []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
		c := &collector{answer: func(n int, w http.ResponseWriter) {
			if n < 3 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(code)
			}
		}}
		srv := httptest.NewServer(c)
		x := newHTTPExporter(t, srv.URL+"/v1/traces")
		if err := x.ExportSpans(context.Background(), someSpans(t)); err != nil {
			t.Errorf("%d: %v", code, err)
		}
		if c.count() != 3 {
			t.Errorf("%d: %d requests, want 3", code, c.count())
		}
		srv.Close()
	}

	c := &collector{answer: func(_ int, w http.ResponseWriter) { http.Error(w, "malformed", http.StatusBadRequest) }}
	srv := httptest.NewServer(c)
	defer srv.Close()
	x := newHTTPExporter(t, srv.URL+"/v1/traces")
	err := x.ExportSpans(context.Background(), someSpans(t))
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("error %v, want the 400 and its body", err)
	}
	if c.count() != 1 {
		t.Errorf("%d requests for a 400, want 1", c.count())
	}
}

// Retries end with the export's context.
func TestOTLPHTTPRetriesEndWithTheContext(t *testing.T) {
	fastRetries(t)
	c := &collector{answer: func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }}
	srv := httptest.NewServer(c)
	defer srv.Close()
	x := newHTTPExporter(t, srv.URL+"/v1/traces")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := x.ExportSpans(ctx, someSpans(t))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the deadline", err)
	}
	if c.count() < 2 {
		t.Errorf("%d requests, want retries", c.count())
	}
}

// Spans the collector says it rejected fail the export.
func TestOTLPHTTPPartialSuccess(t *testing.T) {
	c := &collector{answer: func(_ int, w http.ResponseWriter) {
		b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{PartialSuccess: &collectortrace.ExportTracePartialSuccess{RejectedSpans: 2, ErrorMessage: "too old"}})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	x := newHTTPExporter(t, srv.URL+"/v1/traces")
	if err := x.ExportSpans(context.Background(), someSpans(t)); err == nil || !strings.Contains(err.Error(), "rejected 2 spans: too old") {
		t.Errorf("error %v", err)
	}
}

// writeCA writes srv's certificate as a PEM file for OTEL_EXPORTER_OTLP_CERTIFICATE.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// An https:// collector is trusted through OTEL_EXPORTER_OTLP_CERTIFICATE; a certificate with
// an http:// endpoint is refused at the start, as the SDK's exporter refused it.
func TestOTLPHTTPSWithACertificate(t *testing.T) {
	c := &collector{}
	srv := httptest.NewTLSServer(c)
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", writeCA(t, srv))
	x := newHTTPExporter(t, srv.URL+"/v1/traces")
	if err := x.ExportSpans(context.Background(), someSpans(t)); err != nil {
		t.Fatal(err)
	}
	if c.count() != 1 {
		t.Errorf("%d requests", c.count())
	}
	_, err := newOTLPExporter(config.TracingSpec{Endpoint: "http://127.0.0.1:4318/v1/traces", Protocol: config.ProtocolHTTP}, "", slog.New(slog.DiscardHandler))
	if err == nil {
		t.Error("a certificate with an http:// endpoint was accepted")
	}
}

func TestReadOTLPEnv(t *testing.T) {
	vars := map[string]string{
		"OTEL_EXPORTER_OTLP_TIMEOUT":        "2500",
		"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": " 250 ",
		"OTEL_EXPORTER_OTLP_COMPRESSION":    "none",
		"OTEL_EXPORTER_OTLP_HEADERS":        "a=1,b=x%2Cy",
		"OTEL_EXPORTER_OTLP_CERTIFICATE":    "/missing.pem",
	}
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	env := readOTLPEnv(func(k string) string { return vars[k] }, os.ReadFile, log)
	if env.timeout != 250*time.Millisecond || env.gzip || env.headers["a"] != "1" || env.headers["b"] != "x,y" || env.tls != nil {
		t.Errorf("%+v", env)
	}
	if !strings.Contains(logged.String(), "OTEL_EXPORTER_OTLP_CERTIFICATE") {
		t.Errorf("an unreadable certificate was not reported: %q", logged.String())
	}

	vars = map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "k=s3cret%zz"}
	logged.Reset()
	env = readOTLPEnv(func(k string) string { return vars[k] }, os.ReadFile, log)
	if env.timeout != 10*time.Second || len(env.headers) != 0 {
		t.Errorf("%+v", env)
	}
	if !strings.Contains(logged.String(), "OTEL_EXPORTER_OTLP_TIMEOUT") || strings.Contains(logged.String(), "s3cret") {
		t.Errorf("logged %q: want the bad timeout named and no header value", logged.String())
	}
}

// grpcCollector is a TraceService that keeps each request's metadata and bytes, answering as
// the test scripts.
type grpcCollector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu          sync.Mutex
	reqs        []*collectortrace.ExportTraceServiceRequest
	md          []metadata.MD
	compression []string // each call's grpc-encoding
	answer      func(n int) error
}

func (g *grpcCollector) Export(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	g.mu.Lock()
	g.reqs = append(g.reqs, req)
	g.md = append(g.md, md)
	n := len(g.reqs)
	g.mu.Unlock()
	if g.answer != nil {
		if err := g.answer(n); err != nil {
			return nil, err
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// The stats.Handler methods record the compression of each call's request.
func (g *grpcCollector) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (g *grpcCollector) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (g *grpcCollector) HandleConn(context.Context, stats.ConnStats) {}
func (g *grpcCollector) HandleRPC(_ context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		g.mu.Lock()
		g.compression = append(g.compression, h.Compression)
		g.mu.Unlock()
	}
}

func startGRPCCollector(t *testing.T, g *grpcCollector) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.StatsHandler(g))
	collectortrace.RegisterTraceServiceServer(srv, g)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return "http://" + l.Addr().String()
}

// Over gRPC: the encoded request as the collector decodes it, the headers as metadata, gzip,
// and retries of an unavailable collector (and of an exhausted one that says when).
func TestOTLPGRPCExportEncodedRequest(t *testing.T) {
	fastRetries(t)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
	g := &grpcCollector{answer: func(n int) error {
		switch n {
		case 1:
			return status.Error(grpccodes.Unavailable, "starting")
		case 2:
			st, _ := status.New(grpccodes.ResourceExhausted, "busy").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Millisecond)})
			return st.Err()
		}
		return nil
	}}
	endpoint := startGRPCCollector(t, g)
	x, err := newOTLPExporter(config.TracingSpec{Endpoint: endpoint, Protocol: config.ProtocolGRPC}, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Shutdown(context.Background())
	spans := someSpans(t)
	if err := x.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.reqs) != 3 {
		t.Fatalf("%d calls, want 3", len(g.reqs))
	}
	var enc encoder
	if !proto.Equal(g.reqs[2], decodeRequest(t, enc.encode(spans))) {
		t.Error("the collector did not get the encoded request")
	}
	md := g.md[2]
	if v := md.Get("x-tenant"); len(v) != 1 || v[0] != "acme" {
		t.Errorf("metadata %v", md)
	}
	if len(g.compression) != 3 || g.compression[2] != "gzip" {
		t.Errorf("grpc-encoding of the calls %q, want gzip", g.compression)
	}
}

// A refusal that is not retryable (ResourceExhausted without a delay, InvalidArgument) fails at
// once.
func TestOTLPGRPCNonRetryable(t *testing.T) {
	fastRetries(t)
	for _, code := range []grpccodes.Code{grpccodes.ResourceExhausted, grpccodes.InvalidArgument} {
		g := &grpcCollector{answer: func(int) error { return status.Error(code, "no") }}
		endpoint := startGRPCCollector(t, g)
		x, err := newOTLPExporter(config.TracingSpec{Endpoint: endpoint, Protocol: config.ProtocolGRPC}, "", slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := x.ExportSpans(context.Background(), someSpans(t)); status.Code(err) != code {
			t.Errorf("error %v, want %v", err, code)
		}
		if len(g.reqs) != 1 {
			t.Errorf("%v: %d calls, want 1", code, len(g.reqs))
		}
		_ = x.Shutdown(context.Background())
	}
}
