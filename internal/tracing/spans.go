package tracing

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/wasmrouter/wasmrouter/event"
)

// The router's own span attributes.
const (
	AttrSeq        = attribute.Key("wasmrouter.seq")
	AttrSource     = attribute.Key("wasmrouter.source")
	AttrRoute      = attribute.Key("wasmrouter.route")
	AttrTarget     = attribute.Key("wasmrouter.target")
	AttrCluster    = attribute.Key("wasmrouter.cluster")
	AttrGeneration = attribute.Key("wasmrouter.generation")
	AttrReplay     = attribute.Key("wasmrouter.replay")
	AttrDuplicate  = attribute.Key("wasmrouter.duplicate")
	AttrVerdict    = attribute.Key("wasmrouter.verdict")
	AttrModule     = attribute.Key("wasmrouter.module")
	AttrRole       = attribute.Key("wasmrouter.module.role")
	AttrResult     = attribute.Key("wasmrouter.module.result")
	AttrResultCode = attribute.Key("wasmrouter.module.result_code")
	AttrReason     = attribute.Key("wasmrouter.error")
	AttrAttempts   = attribute.Key("wasmrouter.attempts")
	AttrDeadLetter = attribute.Key("wasmrouter.dead_letter")
)

// Headers of W3C trace context on AMQP messages.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

var rabbitmq = semconv.MessagingSystemRabbitMQ

// StartReceive starts the receive span of a consumed message, a child of the trace context it
// carries, with ids derived from the event (see deriveIDs): ev must have its message id and
// ingest time, as it will be logged. The caller ends it with EndReceive.
func (t *Tracer) StartReceive(ev *event.Event, queue string) trace.Span {
	ids := deriveIDs(ev)
	return t.startSpan("receive ", queue, trace.SpanKindConsumer, extract(ev.Headers), &ids, ev.IngestTime,
		rabbitmq,
		semconv.MessagingOperationTypeReceive,
		semconv.MessagingOperationName("receive"),
		semconv.MessagingDestinationName(ev.Exchange),
		semconv.MessagingDestinationSubscriptionName(queue),
		semconv.MessagingRabbitMQDestinationRoutingKey(ev.RoutingKey),
		semconv.MessagingMessageID(ev.Props.MessageID),
		semconv.MessagingMessageBodySize(len(ev.Body)),
		AttrSource.String(ev.Source),
	)
}

// EndReceive ends a receive span once the message is acknowledged (err nil) or refused.
func EndReceive(span trace.Span, seq uint64, duplicate bool, err error) {
	if seq > 0 {
		setAttr(span, AttrSeq.Int64(int64(seq)))
	}
	if duplicate {
		setAttr(span, AttrDuplicate.Bool(true))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// ReceiveContext is the span context of ev's receive span, computed again from the logged event:
// the same ids StartReceive gave it, and the sampling decision it got.
func (t *Tracer) ReceiveContext(ev *event.Event) trace.SpanContext {
	ids := deriveIDs(ev)
	parent := extract(ev.Headers)
	cfg := trace.SpanContextConfig{TraceID: ids.trace, SpanID: ids.span}
	if parent.IsValid() {
		cfg.TraceID = parent.TraceID()
		cfg.TraceState = parent.TraceState()
		cfg.TraceFlags = parent.TraceFlags() & trace.FlagsSampled
	} else {
		res := t.sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: ids.trace})
		if res.Decision == sdktrace.RecordAndSample {
			cfg.TraceFlags = trace.FlagsSampled
		}
	}
	return trace.NewSpanContext(cfg)
}

// StartProcess starts the span of one route running ev: a child of its receive span, or, for a
// replay or a redrive, the root of a new trace linked to it.
func (t *Tracer) StartProcess(ev *event.Event, route string, replay bool, generation uint64) trace.Span {
	received := t.ReceiveContext(ev)
	// The message's own attributes are on the receive span of the same trace; these say which
	// route and which log record.
	if !replay {
		s := t.startSpan("process ", route, trace.SpanKindConsumer, received, nil, time.Time{},
			rabbitmq, semconv.MessagingOperationTypeProcess, semconv.MessagingOperationName("process"),
			AttrRoute.String(route), AttrSeq.Int64(int64(ev.Seq)))
		if generation > 0 {
			s.SetAttributes(AttrGeneration.Int64(int64(generation)))
		}
		return s
	}
	// A new trace: the message's attributes go with it, and a link to the original.
	s := t.startSpan("process ", route, trace.SpanKindConsumer, trace.SpanContext{}, nil, time.Time{},
		rabbitmq, semconv.MessagingOperationTypeProcess, semconv.MessagingOperationName("process"),
		AttrRoute.String(route), AttrSeq.Int64(int64(ev.Seq)))
	if generation > 0 {
		s.SetAttributes(AttrGeneration.Int64(int64(generation)))
	}
	s.SetAttributes(AttrReplay.Bool(true), semconv.MessagingDestinationName(ev.Exchange),
		semconv.MessagingRabbitMQDestinationRoutingKey(ev.RoutingKey), semconv.MessagingMessageID(ev.Props.MessageID))
	s.AddLink(trace.Link{SpanContext: received, Attributes: []attribute.KeyValue{AttrReplay.Bool(true)}})
	return s
}

// Verdicts of a process span.
const (
	VerdictDeliver    = "deliver"
	VerdictDrop       = "drop"
	VerdictDeadLetter = "dead_letter"
)

// EndProcess ends a process span with the route's verdict; a dead letter is an error with its
// reason.
func EndProcess(span trace.Span, verdict, module, reason string, attempts int) {
	setAttr(span, AttrVerdict.String(verdict))
	setAttr(span, AttrAttempts.Int(attempts))
	if module != "" {
		setAttr(span, AttrModule.String(module))
	}
	if verdict == VerdictDeadLetter {
		setAttr(span, AttrReason.String(reason))
		span.SetStatus(codes.Error, reason)
	}
	span.End()
}

// StartModule starts the span of one guest call under a process span.
func (t *Tracer) StartModule(process trace.Span, module, role string) trace.Span {
	if p, ok := process.(*span); ok && p.recording {
		p.children++
	}
	return t.startSpan("module ", module, trace.SpanKindInternal, process.SpanContext(), nil, time.Time{},
		AttrModule.String(module), AttrRole.String(role))
}

// EndModule ends a guest call's span with its result code (0 continue, 1 drop, 2 retry, 3 dead
// letter); retry and dead letter are errors with the reason.
func EndModule(span trace.Span, code int, result, reason string) {
	setAttr(span, AttrResultCode.Int(code))
	setAttr(span, AttrResult.String(result))
	if code >= 2 {
		setAttr(span, AttrReason.String(reason))
		span.SetStatus(codes.Error, reason)
	}
	span.End()
}

// setAttr sets one attribute; on the router's own spans without building a slice for the
// interface's variadic call, which would be allocated each time.
func setAttr(sp trace.Span, a attribute.KeyValue) {
	if s, ok := sp.(*span); ok {
		s.SetAttributes(a)
		return
	}
	sp.SetAttributes(a)
}

// Delivery describes one publish to a target.
type Delivery struct {
	Route, Target, Cluster string
	Exchange, RoutingKey   string
	MessageID              string
	Seq                    uint64
	Replay                 bool
	DeadLetter             string // the reason, for a publish to a route's dead_letter target
}

// StartSend starts the span of one publish, a child of parent (the process span), and writes
// its context into headers as traceparent (and tracestate when the trace has one), replacing
// the source's. The caller ends it with EndSend at the broker's answer.
func (t *Tracer) StartSend(parent trace.SpanContext, d Delivery, headers map[string]any) trace.Span {
	sp := t.startSpan("send ", d.Exchange, trace.SpanKindProducer, parent, nil, time.Time{},
		rabbitmq,
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("send"),
		semconv.MessagingDestinationName(d.Exchange),
		semconv.MessagingRabbitMQDestinationRoutingKey(d.RoutingKey),
		semconv.MessagingMessageID(d.MessageID),
		AttrRoute.String(d.Route),
		AttrTarget.String(d.Target),
		AttrSeq.Int64(int64(d.Seq)),
	)
	if sp.recording && t.proc.enc == nil {
		// The message id and routing key usually share a logged record's memory (the store
		// decodes without copying): copied, they let the record go once the message is
		// confirmed, and the export queue's bound in bytes holds (processor.go). The router's
		// own exporter needs no copies: a span is encoded as it ends, and the queue holds the
		// encoding, not the span.
		for i := range sp.attrs {
			switch sp.attrs[i].Key {
			case semconv.MessagingMessageIDKey, semconv.MessagingRabbitMQDestinationRoutingKeyKey:
				sp.attrs[i].Value = attribute.StringValue(sp.own(sp.attrs[i].Value.AsString()))
			}
		}
	}
	if d.Cluster != "" {
		sp.SetAttributes(AttrCluster.String(d.Cluster))
	}
	if d.Replay {
		sp.SetAttributes(AttrReplay.Bool(true))
	}
	if d.DeadLetter != "" {
		sp.SetAttributes(AttrDeadLetter.Bool(true), AttrReason.String(d.DeadLetter))
		sp.SetStatus(codes.Error, d.DeadLetter)
	}
	inject(sp.SpanContext(), headers)
	return sp
}

// EndSend ends a publish's span at the broker's answer: nil for a confirm, else why the broker
// refused it or the connection lost it.
func EndSend(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// FailSend marks a publish's span as dead-lettered (its tries spent) and ends it.
func FailSend(span trace.Span, reason string, attempts int) {
	setAttr(span, AttrDeadLetter.Bool(true))
	setAttr(span, AttrReason.String(reason))
	setAttr(span, AttrAttempts.Int(attempts))
	span.SetStatus(codes.Error, reason)
	span.End()
}
