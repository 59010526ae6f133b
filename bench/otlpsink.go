package bench

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// OTLPSink is a local OTLP/HTTP collector for the router-traced side: it decodes each export
// request, as a collector would, and counts the spans. Its CPU is the bench process's, not the
// router's.
type OTLPSink struct {
	URL   string // base URL, for the tracing block's endpoint
	spans atomic.Int64
	srv   *http.Server
}

// StartOTLPSink listens on a free loopback port.
func StartOTLPSink() (*OTLPSink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: OTLP sink: %w", err)
	}
	s := &OTLPSink{URL: "http://" + l.Addr().String()}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve)}
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

func (s *OTLPSink) serve(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	var req collectortrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(raw, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var n int64
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += int64(len(ss.GetSpans()))
		}
	}
	s.spans.Add(n)
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// Spans is how many spans the sink received.
func (s *OTLPSink) Spans() int64 { return s.spans.Load() }

// Close stops the sink.
func (s *OTLPSink) Close() error { return s.srv.Close() }
