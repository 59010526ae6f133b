package tracing

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/otlpreceiver"
)

// The OTLP/HTTP exporter, as a tracing block builds it, reaches a collector.
func TestOTLPHTTPExport(t *testing.T) {
	rcv := otlpreceiver.Start(t)
	tr, err := New(context.Background(), Options{Spec: config.TracingSpec{
		Endpoint: rcv.URL + "/v1/traces", Protocol: config.ProtocolHTTP, SampleRatio: 1, ServiceName: "edge",
	}, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	ev := testEvent(event.Table{"traceparent": sourceParent})
	EndReceive(tr.StartReceive(ev, "q"), 7, false, nil)
	spans := rcv.WaitFor(t, 10*time.Second, "the receive span", func(s []otlpreceiver.Span) bool { return len(s) > 0 })
	s := spans[0]
	if s.Name != "receive q" || s.Service != "edge" || s.TraceID != "0af7651916cd43dd8448eb211c80319c" ||
		s.ParentSpanID != "b7ad6b7169203331" || s.Attrs["wasmrouter.seq"] != int64(7) {
		t.Errorf("received %s", s)
	}
}

// traceService is a gRPC collector keeping what it receives.
type traceService struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	names []string
	got   chan struct{}
}

func (s *traceService) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, span := range ss.GetSpans() {
				s.names = append(s.names, span.GetName())
			}
		}
	}
	select {
	case s.got <- struct{}{}:
	default:
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func TestOTLPGRPCExport(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &traceService{got: make(chan struct{}, 1)}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, svc)
	go srv.Serve(l)
	defer srv.Stop()

	tr, err := New(context.Background(), Options{Spec: config.TracingSpec{
		Endpoint: "http://" + l.Addr().String(), Protocol: config.ProtocolGRPC, SampleRatio: 1,
	}, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	EndReceive(tr.StartReceive(testEvent(nil), "q"), 1, false, nil)
	select {
	case <-svc.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no export reached the gRPC collector")
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if len(svc.names) != 1 || svc.names[0] != "receive q" {
		t.Errorf("received %v", svc.names)
	}
}
