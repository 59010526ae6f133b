package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // registers the "gzip" compressor
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wasmrouter/wasmrouter/internal/config"
)

// otlpExporter sends finished spans to an OTLP collector, over HTTP (a protobuf body posted to
// the endpoint) or gRPC (the TraceService's Export call), encoding each batch with encoder
// instead of through the SDK's protobuf structures. It keeps what the SDK's OTLP exporters did
// (docs/tracing.md): the endpoint from the tracing block, the OTEL_EXPORTER_OTLP_* variables
// for headers, certificates, compression and timeout, and their retries with backoff.
type otlpExporter struct {
	mu     sync.Mutex // ExportSpans is called from one goroutine; this only guards against misuse
	enc    encoder
	gz     *gzip.Writer // nil without compression
	gzBuf  bytes.Buffer
	sender sender
}

// sender delivers one encoded request; the body is only read during the call.
type sender interface {
	send(ctx context.Context, body []byte) error
	close(ctx context.Context) error
}

// maxRequestSize is the largest request sent, as the SDK's exporters bound it.
const maxRequestSize = 64 << 20

// maxResponseSize bounds how much of a collector's answer is read.
const maxResponseSize = 4 << 20

// The SDK exporters' retry policy: exponential backoff from 5 s, growing by half, up to 30 s
// between tries, each delay randomised by +-50%, no new try after a minute. The export's
// context (the queue's ExportTimeout, and for gRPC the OTLP timeout) usually ends it first.
// Variables so that tests can retry without waiting seconds.
var (
	retryInitial    = 5 * time.Second
	retryMax        = 30 * time.Second
	retryMaxElapsed = time.Minute
)

// otlpEnv is what the OTEL_EXPORTER_OTLP_* variables say about the transport; the endpoint and
// protocol come from the tracing block, which already applied their variables.
type otlpEnv struct {
	headers map[string]string
	tls     *tls.Config // nil when no certificate variable is set
	gzip    bool
	timeout time.Duration
}

// readOTLPEnv reads the variables, the traces-specific form over the general one, as the SDK's
// exporters read them. A value that cannot be used is logged and left out, as they did.
func readOTLPEnv(getenv func(string) string, readFile func(string) ([]byte, error), log *slog.Logger) otlpEnv {
	get := func(name string) (string, string, bool) {
		for _, n := range []string{"OTEL_EXPORTER_OTLP_TRACES_" + name, "OTEL_EXPORTER_OTLP_" + name} {
			if v := strings.TrimSpace(getenv(n)); v != "" {
				return n, v, true
			}
		}
		return "", "", false
	}
	env := otlpEnv{timeout: 10 * time.Second}
	if n, v, ok := get("HEADERS"); ok {
		env.headers = parseOTLPHeaders(n, v, log)
	}
	if _, v, ok := get("COMPRESSION"); ok {
		env.gzip = v == "gzip"
	}
	if n, v, ok := get("TIMEOUT"); ok {
		if ms, err := strconv.Atoi(v); err == nil {
			env.timeout = time.Duration(ms) * time.Millisecond
		} else {
			log.Warn("tracing: ignoring a timeout that is not a number of milliseconds", "variable", n)
		}
	}
	var tlsCfg tls.Config
	if n, v, ok := get("CERTIFICATE"); ok {
		if pem, err := readFile(v); err != nil {
			log.Warn("tracing: cannot read the collector's CA certificate", "variable", n, "error", err)
		} else if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(pem) {
			log.Warn("tracing: no certificate in the collector's CA file", "variable", n)
		} else {
			tlsCfg.RootCAs = pool
		}
	}
	for _, prefix := range []string{"OTEL_EXPORTER_OTLP_TRACES_", "OTEL_EXPORTER_OTLP_"} {
		certFile, keyFile := strings.TrimSpace(getenv(prefix+"CLIENT_CERTIFICATE")), strings.TrimSpace(getenv(prefix+"CLIENT_KEY"))
		if certFile == "" || keyFile == "" {
			continue
		}
		cert, err1 := readFile(certFile)
		key, err2 := readFile(keyFile)
		if err := errors.Join(err1, err2); err != nil {
			log.Warn("tracing: cannot read the client certificate", "variable", prefix+"CLIENT_CERTIFICATE", "error", err)
			break
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			log.Warn("tracing: unusable client certificate", "variable", prefix+"CLIENT_CERTIFICATE", "error", err)
			break
		}
		tlsCfg.Certificates = []tls.Certificate{pair}
		break
	}
	if tlsCfg.RootCAs != nil || len(tlsCfg.Certificates) > 0 {
		env.tls = &tlsCfg
	}
	return env
}

// parseOTLPHeaders reads "key=value,key2=value2" with URL-encoded values; a pair that is not
// valid is logged (without its value, which may be a credential) and left out.
func parseOTLPHeaders(name, v string, log *slog.Logger) map[string]string {
	headers := make(map[string]string)
	for _, pair := range strings.Split(v, ",") {
		k, val, found := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !found || !validHeaderKey(k) {
			log.Warn("tracing: ignoring a malformed header", "variable", name)
			continue
		}
		unescaped, err := url.PathUnescape(val)
		if err != nil {
			log.Warn("tracing: ignoring a header whose value is not URL-encoded", "variable", name, "header", k)
			continue
		}
		headers[k] = strings.TrimSpace(unescaped)
	}
	return headers
}

func validHeaderKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if c > unicode.MaxASCII || !(unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return true
}

// newOTLPExporter builds the exporter spec describes. It does not contact the collector.
func newOTLPExporter(spec config.TracingSpec, version string, log *slog.Logger) (*otlpExporter, error) {
	env := readOTLPEnv(os.Getenv, os.ReadFile, log)
	u, err := url.Parse(spec.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("tracing: endpoint: %w", err)
	}
	// As with the SDK's exporters, the endpoint's scheme decides TLS (OTEL_EXPORTER_OTLP_INSECURE
	// is overridden by it).
	secure := u.Scheme == "https"
	userAgent := "wasmrouter"
	if version != "" {
		userAgent += "/" + version
	}
	x := &otlpExporter{}
	switch spec.Protocol {
	case config.ProtocolGRPC:
		x.sender, err = newGRPCSender(u, secure, env, userAgent)
	case config.ProtocolHTTP, "":
		x.sender, err = newHTTPSender(u, secure, env, userAgent)
		if env.gzip {
			x.gz = gzip.NewWriter(io.Discard)
		}
	default:
		err = fmt.Errorf("tracing: unknown protocol %q", spec.Protocol)
	}
	if err != nil {
		return nil, err
	}
	return x, nil
}

// ExportSpans encodes spans into one request and sends it, retrying as the SDK's exporters did.
func (x *otlpExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.send(ctx, x.enc.encode(spans))
}

// exportEncoded sends spans encoded as they ended (encoded.go) in one request, as ExportSpans.
func (x *otlpExporter) exportEncoded(ctx context.Context, res *resource.Resource, scope instrumentation.Scope, spans []byte) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.send(ctx, x.enc.encodeSpans(res, scope, spans))
}

// send compresses body when configured and sends it, retrying as the SDK's exporters did.
func (x *otlpExporter) send(ctx context.Context, body []byte) error {
	if len(body) == 0 {
		return nil
	}
	if len(body) > maxRequestSize {
		return fmt.Errorf("tracing: export request of %d bytes exceeds %d", len(body), maxRequestSize)
	}
	if x.gz != nil {
		x.gzBuf.Reset()
		x.gz.Reset(&x.gzBuf)
		if _, err := x.gz.Write(body); err != nil {
			return err
		}
		if err := x.gz.Close(); err != nil {
			return err
		}
		body = x.gzBuf.Bytes()
	}
	return x.sender.send(ctx, body)
}

// keepsNoSpans: ExportSpans encodes the spans into its own buffer and keeps none of them, so
// the processor may record them again (processor.go).
func (x *otlpExporter) keepsNoSpans() {}

// Shutdown closes the connection; spans exported afterwards fail.
func (x *otlpExporter) Shutdown(ctx context.Context) error { return x.sender.close(ctx) }

// retryable is an error a new try may cure, after at least throttle (the collector's own wish).
type retryable struct {
	err      error
	throttle time.Duration
}

func (e *retryable) Error() string { return e.err.Error() }
func (e *retryable) Unwrap() error { return e.err }

// withRetry runs try until it succeeds, fails for good, the context ends or a minute has gone.
func withRetry(ctx context.Context, try func(context.Context) error) error {
	start := time.Now()
	interval := retryInitial
	for {
		err := try(ctx)
		var r *retryable
		if err == nil || !errors.As(err, &r) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", context.Cause(ctx), r.err)
		}
		elapsed := time.Since(start)
		if elapsed > retryMaxElapsed || elapsed+r.throttle > retryMaxElapsed {
			return fmt.Errorf("export retries gave up after %s: %w", elapsed.Round(time.Millisecond), r.err)
		}
		delay := time.Duration(float64(interval) * (0.5 + rand.Float64())) // +-50%
		interval = min(time.Duration(float64(interval)*1.5), retryMax)
		t := time.NewTimer(max(delay, r.throttle))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", context.Cause(ctx), r.err)
		case <-t.C:
		}
	}
}

// httpSender posts requests to an OTLP/HTTP collector.
type httpSender struct {
	url       string
	client    *http.Client
	headers   http.Header
	transport *http.Transport
}

func newHTTPSender(u *url.URL, secure bool, env otlpEnv, userAgent string) (*httpSender, error) {
	if !secure && env.tls != nil {
		return nil, errors.New("tracing: a certificate is configured (OTEL_EXPORTER_OTLP_*CERTIFICATE) but the endpoint is http://, not https://")
	}
	target := *u
	if target.Path == "" {
		target.Path = "/"
	}
	// A transport of the router's own, as net/http's default one is configured, so that no other
	// code changing the default affects the export.
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       env.tls,
	}
	h := http.Header{}
	for k, v := range env.headers {
		h.Set(k, v)
	}
	h.Set("User-Agent", userAgent)
	h.Set("Content-Type", "application/x-protobuf")
	if env.gzip {
		h.Set("Content-Encoding", "gzip")
	}
	return &httpSender{
		url:       target.String(),
		client:    &http.Client{Transport: transport, Timeout: env.timeout}, // each try within the OTLP timeout
		headers:   h,
		transport: transport,
	}, nil
}

func (s *httpSender) send(ctx context.Context, body []byte) error {
	return withRetry(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header = s.headers.Clone()
		resp, err := s.client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) && ue.Temporary() {
				return &retryable{err: err}
			}
			return err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
		if err != nil {
			return err
		}
		if len(data) > maxResponseSize {
			return fmt.Errorf("collector's response exceeds %d bytes", maxResponseSize)
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			if len(data) == 0 || resp.Header.Get("Content-Type") != "application/x-protobuf" {
				return nil
			}
			return partialSuccess(data)
		}
		msg := strings.TrimSpace(string(data))
		if msg == "" {
			msg = "(empty)"
		}
		err = fmt.Errorf("collector answered %s: %s", resp.Status, msg)
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return &retryable{err: err, throttle: retryAfter(resp.Header.Get("Retry-After"))}
		}
		return err
	})
}

// retryAfter reads a Retry-After header: seconds or a date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
		return time.Duration(min(secs, int64(1<<63-1)/int64(time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// partialSuccess reads an ExportTraceServiceResponse: spans the collector rejected make the
// export an error, as they did with the SDK's exporters.
func partialSuccess(data []byte) error {
	var resp collectortrace.ExportTraceServiceResponse
	if err := proto.Unmarshal(data, &resp); err != nil {
		return fmt.Errorf("collector's response: %w", err)
	}
	return partialSuccessError(&resp)
}

func partialSuccessError(resp *collectortrace.ExportTraceServiceResponse) error {
	ps := resp.GetPartialSuccess()
	if ps == nil || (ps.GetRejectedSpans() == 0 && ps.GetErrorMessage() == "") {
		return nil
	}
	return fmt.Errorf("collector rejected %d spans: %s", ps.GetRejectedSpans(), ps.GetErrorMessage())
}

func (s *httpSender) close(context.Context) error {
	s.transport.CloseIdleConnections()
	return nil
}

// grpcSender calls the TraceService's Export method with the encoded request as it is.
type grpcSender struct {
	conn    *grpc.ClientConn
	md      metadata.MD
	timeout time.Duration
	stop    context.Context
	cancel  context.CancelFunc
}

// traceExportMethod is the gRPC method of opentelemetry.proto.collector.trace.v1.TraceService.
const traceExportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

func newGRPCSender(u *url.URL, secure bool, env otlpEnv, userAgent string) (*grpcSender, error) {
	target := u.Host
	if target == "" {
		target = u.String()
	}
	opts := []grpc.DialOption{grpc.WithUserAgent(userAgent)}
	// As with the SDK's gRPC exporter, a certificate from the variables means TLS with it; else
	// the scheme decides.
	switch {
	case env.tls != nil:
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(env.tls)))
	case secure:
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(nil)))
	default:
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	callOpts := []grpc.CallOption{grpc.ForceCodec(rawCodec{})}
	if env.gzip {
		callOpts = append(callOpts, grpc.UseCompressor("gzip"))
	}
	opts = append(opts, grpc.WithDefaultCallOptions(callOpts...))
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: gRPC endpoint: %w", err)
	}
	s := &grpcSender{conn: conn, timeout: env.timeout}
	if len(env.headers) > 0 {
		s.md = metadata.New(env.headers)
	}
	s.stop, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func (s *grpcSender) send(ctx context.Context, body []byte) error {
	// The whole export, retries included, within the OTLP timeout.
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, s.timeout, errors.New("export timeout"))
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.stop, cancel)
	defer stop()
	if s.md.Len() > 0 {
		ctx = metadata.NewOutgoingContext(ctx, s.md)
	}
	req := rawMessage(body)
	return withRetry(ctx, func(ctx context.Context) error {
		var resp collectortrace.ExportTraceServiceResponse
		err := s.conn.Invoke(ctx, traceExportMethod, &req, &resp)
		if err == nil {
			return partialSuccessError(&resp)
		}
		st := status.Convert(err)
		switch st.Code() {
		case grpccodes.Canceled, grpccodes.DeadlineExceeded, grpccodes.Aborted, grpccodes.OutOfRange,
			grpccodes.Unavailable, grpccodes.DataLoss:
			_, d := retryInfo(st)
			return &retryable{err: err, throttle: d}
		case grpccodes.ResourceExhausted:
			// Retried only when the collector says when.
			if ok, d := retryInfo(st); ok {
				return &retryable{err: err, throttle: d}
			}
		}
		return err
	})
}

func retryInfo(st *status.Status) (bool, time.Duration) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return true, ri.GetRetryDelay().AsDuration()
		}
	}
	return false, 0
}

func (s *grpcSender) close(context.Context) error {
	s.cancel()
	return s.conn.Close()
}

// rawMessage is a request already encoded.
type rawMessage []byte

// rawCodec sends a rawMessage's bytes as they are and decodes answers as protobuf messages.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(*rawMessage); ok {
		return *m, nil
	}
	return nil, fmt.Errorf("tracing: gRPC codec cannot send %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("tracing: gRPC codec cannot decode into %T", v)
	}
	return proto.Unmarshal(data, m)
}

// Name is the content subtype, application/grpc+proto, as for any protobuf call.
func (rawCodec) Name() string { return "proto" }
