package tracing

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// dropLogEvery is the least time between two log lines about dropped spans.
const dropLogEvery = 30 * time.Second

// dropProcessor batches finished spans to the exporter on its own goroutine. Ending a span never
// waits: when the queue is full (the collector is down or slow) the span is dropped and counted,
// and a failed export counts its whole batch as dropped. The SDK's batch processor also drops
// rather than block, but it does not say how many; the router's metric and log line do.
//
// The queue is a slice under a mutex rather than a channel: a channel send woke the exporting
// goroutine for every span (three or four per event); now it wakes once per full batch, or at
// the interval. It is bounded in bytes, the spans waiting and those being exported together,
// so that a slow collector costs at most that much memory.
//
// With the router's own OTLP exporter (encodedExporter) a span is encoded as it ends, on the
// goroutine that ends it, and goes back to its pool at once: the queue holds the spans' OTLP
// encodings (a span's size is that), in chunks of up to a batch. Encoding a span while its
// memory is still in the processor's cache, and recording the next span in memory just freed,
// cost a fraction of encoding and recycling a batch of spans that had long left the cache
// (BENCHMARKS.md, Tracing). With another exporter (the SDK's, a test's) the queue holds the
// spans themselves (a span's size is spanBytes).
type dropProcessor struct {
	exporter sdktrace.SpanExporter
	enc      encodedExporter // the exporter, when it takes encoded spans; nil otherwise
	recycle  bool            // the exporter keeps nothing of a span: the router's spans go back to their pool
	mu       sync.Mutex
	queue    []sdktrace.ReadOnlySpan // finished spans waiting, oldest first (without enc)
	chunks   []*spanChunk            // encoded spans waiting, oldest first (with enc)
	free     []*spanChunk            // chunks exported, to fill again
	held     int                     // bytes of the spans waiting and being exported
	limit    int                     // most bytes held
	wake     chan struct{}           // a batch is ready
	batch    int
	interval time.Duration
	timeout  time.Duration
	dropped  prometheus.Counter
	exported prometheus.Counter
	log      *slog.Logger

	flushes chan chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	// Drops since the last log line, and when it was written (Unix nanoseconds).
	unlogged atomic.Int64
	lastLog  atomic.Int64
	lastErr  atomic.Pointer[string]
}

func newDropProcessor(exporter sdktrace.SpanExporter, opts Options) *dropProcessor {
	enc, _ := exporter.(encodedExporter)
	p := &dropProcessor{
		exporter: exporter,
		enc:      enc,
		recycle:  keepsNoSpans(exporter),
		limit:    orDefault(opts.QueueBytes, 8<<20),
		wake:     make(chan struct{}, 1),
		batch:    orDefault(opts.Batch, 512),
		interval: opts.Interval,
		timeout:  opts.ExportTimeout,
		dropped:  opts.Dropped,
		exported: opts.Exported,
		log:      opts.Logger,
		flushes:  make(chan chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if p.interval <= 0 {
		p.interval = time.Second
	}
	if p.timeout <= 0 {
		p.timeout = 30 * time.Second
	}
	go p.run()
	return p
}

// spanForgetter is an exporter that keeps nothing of the spans it is given once ExportSpans
// returns: the router's own (otlpexport.go), which has encoded them into its request by then.
// Another exporter (the SDK's, a test's in-memory one) may keep them, and then the router's
// spans are left to the garbage collector rather than recorded again.
type spanForgetter interface{ keepsNoSpans() }

func keepsNoSpans(e sdktrace.SpanExporter) bool {
	_, ok := e.(spanForgetter)
	return ok
}

// release returns the router's spans among spans to their pool, when the exporter is done
// with them (or they were dropped).
func (p *dropProcessor) release(spans []sdktrace.ReadOnlySpan) {
	if !p.recycle {
		return
	}
	for _, s := range spans {
		if own, ok := s.(*finishedSpan); ok {
			own.release()
		}
	}
}

func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

func (p *dropProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span for export, or drops it when the queue is full.
func (p *dropProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case <-p.stop:
		p.releaseOne(s)
		return
	default:
	}
	if p.enc != nil {
		p.onEndEncoded(s)
		return
	}
	n := spanBytes(s)
	p.mu.Lock()
	if p.held+n > p.limit {
		p.mu.Unlock()
		p.drop(1, nil)
		p.releaseOne(s)
		return
	}
	p.held += n
	p.queue = append(p.queue, s)
	ready := len(p.queue) == p.batch
	p.mu.Unlock()
	if ready {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

func (p *dropProcessor) releaseOne(s sdktrace.ReadOnlySpan) {
	if own, ok := s.(*finishedSpan); ok && p.recycle {
		own.release()
	}
}

// take moves up to one batch of waiting spans into buf.
func (p *dropProcessor) take(buf []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := min(len(p.queue), p.batch-len(buf))
	buf = append(buf, p.queue[:n]...)
	rest := copy(p.queue, p.queue[n:])
	clear(p.queue[rest:])
	p.queue = p.queue[:rest]
	return buf
}

// drop counts lost spans and logs about them at most once per dropLogEvery.
func (p *dropProcessor) drop(n int, err error) {
	if p.dropped != nil {
		p.dropped.Add(float64(n))
	}
	if err != nil {
		msg := err.Error()
		p.lastErr.Store(&msg)
	}
	total := p.unlogged.Add(int64(n))
	now := time.Now().UnixNano()
	last := p.lastLog.Load()
	if last != 0 && now-last < int64(dropLogEvery) {
		return
	}
	if !p.lastLog.CompareAndSwap(last, now) {
		return // another goroutine logs this period
	}
	p.unlogged.Add(-total)
	attrs := []any{"spans", total}
	if e := p.lastErr.Load(); e != nil {
		attrs = append(attrs, "last_error", *e)
	}
	p.log.Warn("trace spans dropped: the collector is unreachable or too slow; routing goes on", attrs...)
}

// run exports batches until stop, then exports what is left.
func (p *dropProcessor) run() {
	defer close(p.done)
	if p.enc != nil {
		p.runEncoded()
		return
	}
	buf := make([]sdktrace.ReadOnlySpan, 0, p.batch)
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	for {
		select {
		case <-p.wake:
			// Full batches only; a partial one waits for the interval.
			for {
				if buf = p.take(buf); len(buf) < p.batch {
					break
				}
				buf = p.export(buf)
			}
		case <-ticker.C:
			buf = p.export(p.drain(buf))
		case ack := <-p.flushes:
			buf = p.export(p.drain(buf))
			close(ack)
		case <-p.stop:
			p.export(p.drain(buf))
			return
		}
	}
}

// drain moves every waiting span into buf, exporting full batches on the way.
func (p *dropProcessor) drain(buf []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	for {
		buf = p.take(buf)
		if len(buf) < p.batch {
			return buf
		}
		buf = p.export(buf)
	}
}

// export sends buf and returns it emptied for reuse.
func (p *dropProcessor) export(buf []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	if len(buf) == 0 {
		return buf
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	err := p.exporter.ExportSpans(ctx, buf)
	cancel()
	if err != nil {
		p.drop(len(buf), err)
	} else if p.exported != nil {
		p.exported.Add(float64(len(buf)))
	}
	n := 0
	for _, s := range buf {
		n += spanBytes(s)
	}
	p.mu.Lock()
	p.held -= n
	p.mu.Unlock()
	p.release(buf)
	clear(buf)
	return buf[:0]
}

// ForceFlush exports every span queued before the call.
func (p *dropProcessor) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case p.flushes <- ack:
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is queued and stops the exporter, both within ctx.
func (p *dropProcessor) Shutdown(ctx context.Context) error {
	p.once.Do(func() { close(p.stop) })
	select {
	case <-p.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.exporter.Shutdown(ctx)
}

// foreignSpanBytes is what a span recorded by the SDK (not the router's own) is counted for.
const foreignSpanBytes = 2 << 10

// spanBytes is the memory a finished span holds, as a queue of spans (an exporter other than
// the router's) counts it: the router's span with its attributes' strings (StartSend copies
// those that would keep a logged record alive, spans.go), or a fixed estimate for another
// span. It is the same from End to release.
func spanBytes(s sdktrace.ReadOnlySpan) int {
	own, ok := s.(*finishedSpan)
	if !ok {
		return foreignSpanBytes
	}
	n := int(unsafe.Sizeof(span{})) + len(own.status.Description)
	if len(own.attrs) > maxSpanAttrs {
		n += len(own.attrs) * int(unsafe.Sizeof(attribute.KeyValue{}))
	}
	for i := range own.attrs {
		if own.attrs[i].Value.Type() == attribute.STRING {
			n += len(own.attrs[i].Value.AsString())
		}
	}
	for i := range own.links {
		n += int(unsafe.Sizeof(sdktrace.Link{})) + len(own.links[i].Attributes)*int(unsafe.Sizeof(attribute.KeyValue{}))
	}
	return n
}
