package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/wasmrouter/wasmrouter/internal/testutil/otlpbody"
)

// OTLPSink is a local OTLP/HTTP collector for the router-traced side: it counts the spans of
// each export request and answers as a collector does. It runs in the bench process, on the
// machine the router and the broker share, so it does as little as it can: it walks the
// request's protobuf encoding down to the spans and counts them, without decoding them (a
// real collector runs elsewhere; decoding every request took a quarter of a core away from
// the router and the broker, BENCHMARKS.md, Tracing). The e2e tests' collector decodes and
// checks every span (e2e/tracingtest).
type OTLPSink struct {
	URL      string // base URL, for the tracing block's endpoint
	spans    atomic.Int64
	requests atomic.Int64
	srv      *http.Server
	bufs     sync.Pool // *bytes.Buffer, a request's body
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
	buf, _ := s.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer func() {
		buf.Reset()
		s.bufs.Put(buf)
	}()
	body, err := otlpbody.Reader(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, err = buf.ReadFrom(body)
	var n int64
	if err == nil {
		n, err = countSpans(buf.Bytes())
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.spans.Add(n)
	s.requests.Add(1)
	// An empty ExportTraceServiceResponse: all accepted.
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// Field numbers of the messages walked (opentelemetry-proto collector/trace/v1, trace/v1).
const (
	otlpRequestResourceSpans = 1
	otlpResourceScopeSpans   = 2
	otlpScopeSpans           = 2
)

var errOTLPMalformed = errors.New("bench: OTLP sink: malformed export request")

// countSpans counts the spans of an ExportTraceServiceRequest: the Span fields of the
// ScopeSpans of its ResourceSpans. Other fields are skipped unread.
func countSpans(req []byte) (int64, error) {
	var n int64
	err := eachField(req, otlpRequestResourceSpans, func(rs []byte) error {
		return eachField(rs, otlpResourceScopeSpans, func(ss []byte) error {
			return eachField(ss, otlpScopeSpans, func([]byte) error { n++; return nil })
		})
	})
	return n, err
}

// eachField calls f with the bytes of every length-delimited field number num of message b.
func eachField(b []byte, num protowire.Number, f func([]byte) error) error {
	for len(b) > 0 {
		got, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errOTLPMalformed
		}
		b = b[n:]
		if got == num && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return errOTLPMalformed
			}
			if err := f(v); err != nil {
				return err
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(got, typ, b)
		if m < 0 {
			return errOTLPMalformed
		}
		b = b[m:]
	}
	return nil
}

// Spans is how many spans the sink received; 0 for a nil sink.
func (s *OTLPSink) Spans() int64 {
	if s == nil {
		return 0
	}
	return s.spans.Load()
}

// Requests is how many export requests the sink accepted.
func (s *OTLPSink) Requests() int64 { return s.requests.Load() }

// Close stops the sink.
func (s *OTLPSink) Close() error { return s.srv.Close() }
