package tracing

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// encodedExporter is an exporter that takes spans already encoded (the router's own,
// otlpexport.go): the processor encodes each span as it ends and queues the bytes
// (processor.go).
type encodedExporter interface {
	sdktrace.SpanExporter
	// exportEncoded sends one request holding spans, the encodings of spans of resource res and
	// scope scope (appendSpan's ScopeSpans.spans fields, one after the other). It keeps nothing
	// of spans once it returns.
	exportEncoded(ctx context.Context, res *resource.Resource, scope instrumentation.Scope, spans []byte) error
}

// spanChunk is encoded spans of one resource and scope, at most a batch of them: one export
// request.
type spanChunk struct {
	res   *resource.Resource
	scope instrumentation.Scope
	buf   []byte
	n     int // spans in buf
}

// keptChunks is how many exported chunks are kept to fill again (their buffers are reused).
const keptChunks = 4

// scratchPool holds buffers to encode a span in before it is copied into the queue (outside
// the queue's lock, which the goroutines ending spans share).
var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

type scratch struct{ b []byte }

// onEndEncoded encodes a finished span, returns the router's span to its pool, and queues the
// encoding, or drops it when the queue is full.
func (p *dropProcessor) onEndEncoded(s sdktrace.ReadOnlySpan) {
	sb := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sb)
	b := appendSpan(sb.b[:0], s)
	sb.b = b
	res, scope := s.Resource(), s.InstrumentationScope()
	p.releaseOne(s) // nothing reads the span past its encoding
	n := len(b)
	p.mu.Lock()
	if p.held+n > p.limit {
		p.mu.Unlock()
		p.drop(1, nil)
		return
	}
	p.held += n
	var c *spanChunk
	if k := len(p.chunks); k > 0 {
		c = p.chunks[k-1]
	}
	if c == nil || c.n == p.batch || c.res != res || c.scope != scope {
		if k := len(p.free); k > 0 {
			c = p.free[k-1]
			p.free[k-1] = nil
			p.free = p.free[:k-1]
		} else {
			// Room for a batch of spans like this one, rather than growing to it by doubling.
			c = &spanChunk{buf: make([]byte, 0, p.batch*(n+n/4))}
		}
		c.res, c.scope = res, scope
		p.chunks = append(p.chunks, c)
	}
	c.buf = append(c.buf, b...)
	c.n++
	ready := c.n == p.batch
	p.mu.Unlock()
	if ready {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// runEncoded is run with an encodedExporter: it exports full chunks when woken, every chunk at
// the interval, on a flush and at stop.
func (p *dropProcessor) runEncoded() {
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	for {
		select {
		case <-p.wake:
			// Full chunks only; a partial one waits for the interval.
			for p.exportChunk(true) {
			}
		case <-ticker.C:
			for p.exportChunk(false) {
			}
		case ack := <-p.flushes:
			for p.exportChunk(false) {
			}
			close(ack)
		case <-p.stop:
			for p.exportChunk(false) {
			}
			return
		}
	}
}

// exportChunk exports the oldest chunk, when there is one (and it is full, if full is set);
// false when there was none to export.
func (p *dropProcessor) exportChunk(full bool) bool {
	p.mu.Lock()
	if len(p.chunks) == 0 || (full && p.chunks[0].n < p.batch) {
		p.mu.Unlock()
		return false
	}
	c := p.chunks[0]
	rest := copy(p.chunks, p.chunks[1:])
	p.chunks[rest] = nil
	p.chunks = p.chunks[:rest]
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	err := p.enc.exportEncoded(ctx, c.res, c.scope, c.buf)
	cancel()
	if err != nil {
		p.drop(c.n, err)
	} else if p.exported != nil {
		p.exported.Add(float64(c.n))
	}
	n := len(c.buf)
	c.res, c.buf, c.n = nil, c.buf[:0], 0
	p.mu.Lock()
	p.held -= n
	if len(p.free) < keptChunks {
		p.free = append(p.free, c)
	}
	p.mu.Unlock()
	return true
}

// encodeSpans returns the request for spans, encoded spans of resource res and scope scope
// (exportEncoded). The bytes are the encoder's buffer: valid until the next call.
func (e *encoder) encodeSpans(res *resource.Resource, scope instrumentation.Scope, spans []byte) []byte {
	if len(spans) == 0 {
		return e.buf[:0]
	}
	b, rs := beginMessage(e.buf[:0], fRequestResourceSpans)
	b = e.appendResource(b, res)
	var m int
	b, m = beginMessage(b, fResourceSpansScopeSpans)
	b = appendScope(b, scope)
	b = append(b, spans...)
	b = appendString(b, fScopeSpansSchemaURL, scope.SchemaURL)
	b = endMessage(b, m)
	if url := schemaURL(res); url != "" {
		b = appendString(b, fResourceSpansSchemaURL, url)
	}
	b = endMessage(b, rs)
	e.buf = b
	return b
}
