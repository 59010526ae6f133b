package router

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/backoff"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
	"github.com/wasmrouter/wasmrouter/wasmhost"
)

// Verdict is what a route's modules decided for an event.
type Verdict uint8

const (
	Pass    Verdict = iota // go on to the targets
	Dropped                // a module returned drop: nothing to deliver, nothing to dead-letter
	Failed                 // a module failed permanently, or kept failing: dead-letter
)

// Decision is the outcome of running an event through a route's modules.
type Decision struct {
	Verdict  Verdict
	Module   string       // the module that dropped or failed the event
	Reason   string       // why it failed
	Attempts int          // tries made (1 unless a module asked for a retry)
	Event    *event.Event // the event after transforms (the input itself when there are none)
	Emits    []wasmhost.Emit
	// Trace is the process span's context, the parent of the send spans; zero without tracing.
	Trace trace.SpanContext
}

// routeTrace is the process span a route runs in, when the router traces; module calls get
// child spans.
type routeTrace struct {
	tracer  *tracing.Tracer
	span    trace.Span
	traceID trace.TraceID // for meta_get("trace_id"), formatted only for a route with modules
}

// Process runs ev through the route's filters, transforms and handler once. ev is not changed:
// transforms work on a private copy.
func (r *Route) Process(ctx context.Context, ev *event.Event) Decision {
	return r.process(ctx, ev, nil)
}

// invocations recycles process's wasmhost.Invocation.
var invocations = sync.Pool{New: func() any { return new(wasmhost.Invocation) }}

func (r *Route) process(ctx context.Context, ev *event.Event, rt *routeTrace) (d Decision) {
	d = Decision{Verdict: Pass, Attempts: 1, Event: ev}
	if !r.hasModules() {
		return d
	}
	var current string // the module running, for a panic's report
	defer func() {
		// A panic is this event's failure, retried as a trap is, never the stream's end.
		if p := recover(); p != nil {
			d = Decision{Verdict: retryable, Attempts: 1, Event: ev, Module: current, Reason: fmt.Sprintf("panic: %v", p)}
		}
	}()
	// Pooled: a guest's instance keeps the invocation only during the call, and one allocated
	// here escaped to the heap for every event of a route with modules.
	inv := invocations.Get().(*wasmhost.Invocation)
	defer func() {
		*inv = wasmhost.Invocation{}
		invocations.Put(inv)
	}()
	*inv = wasmhost.Invocation{Event: ev, Route: r.Spec.Name, KnownTarget: r.known}
	if rt != nil {
		inv.TraceID = rt.traceID.String()
	}
	if len(r.transforms) > 0 || r.handler != nil {
		// Guests replace the body, never write into it: the copy can share it.
		inv.Event = ev.CloneSharingBody()
		d.Event = inv.Event
	}
	run := func(m *wasmhost.Module, role wasmhost.Role) bool {
		current = m.Name()
		var span trace.Span
		if rt != nil {
			span = rt.tracer.StartModule(rt.span, m.Name(), role.String())
		}
		out := m.Call(ctx, role, inv)
		if span != nil {
			tracing.EndModule(span, int(out.Code), out.Code.String(), out.Reason)
		}
		switch out.Code {
		case wasmhost.Continue:
			if role == wasmhost.RoleHandler {
				d.Emits = out.Emits
			}
			return true
		case wasmhost.Drop:
			d.Verdict, d.Module = Dropped, m.Name()
		case wasmhost.DeadLetter:
			d.Verdict, d.Module, d.Reason = Failed, m.Name(), reasonOr(out.Reason, "dead-letter requested by module")
		default: // retry, trap, timeout, unknown code
			d.Verdict, d.Module, d.Reason = retryable, m.Name(), reasonOr(out.Reason, "retry requested by module")
		}
		return false
	}
	for _, m := range r.filters {
		if !run(m, wasmhost.RoleFilter) {
			return d
		}
	}
	for _, m := range r.transforms {
		if !run(m, wasmhost.RoleTransform) {
			return d
		}
	}
	if r.handler != nil {
		run(r.handler, wasmhost.RoleHandler)
	}
	return d
}

// hasModules reports whether the route runs guests; without any, every event passes as is.
func (r *Route) hasModules() bool {
	return len(r.filters) > 0 || len(r.transforms) > 0 || r.handler != nil
}

// retryable marks a transient failure inside Process; ProcessWithRetry turns it into Failed once
// the attempts are spent.
const retryable Verdict = 255

// ProcessWithRetry runs Process until it passes, drops or fails permanently, retrying transient
// failures per the route's retry policy. It returns early with the last decision when ctx ends.
func (r *Route) ProcessWithRetry(ctx context.Context, ev *event.Event) Decision {
	return r.processWithRetry(ctx, ev, nil)
}

func (r *Route) processWithRetry(ctx context.Context, ev *event.Event, rt *routeTrace) Decision {
	policy := r.Spec.Retry
	for attempt := 1; ; attempt++ {
		d := r.process(ctx, ev, rt)
		d.Attempts = attempt
		if d.Verdict != retryable {
			return d
		}
		if attempt >= policy.Attempts || ctx.Err() != nil {
			d.Verdict = Failed
			return d
		}
		if !backoff.Sleep(ctx, retryDelay(policy, attempt)) {
			d.Verdict = Failed
			return d
		}
	}
}

// retryDelay is the wait before try attempt+1 under a route's retry policy: exponential from
// Backoff, capped at MaxBackoff, with jitter (between half and the full value) so that many
// streams do not retry in step.
func retryDelay(p config.RetrySpec, attempt int) time.Duration {
	return backoff.HalfJitter(backoff.Exponential(p.Backoff, p.MaxBackoff, attempt))
}

func reasonOr(reason, fallback string) string {
	if reason == "" {
		return fallback
	}
	return reason
}

// runRoute runs ev through route r with retries; with a tracer, inside a process span (the root
// of a new trace for a replay) whose context the decision keeps for the send spans.
func runRoute(ctx context.Context, tracer *tracing.Tracer, r *Route, ev *event.Event, replay bool) Decision {
	if tracer == nil {
		return r.ProcessWithRetry(ctx, ev)
	}
	span := tracer.StartProcess(ev, r.Spec.Name, replay, r.generation)
	sc := span.SpanContext()
	d := r.processWithRetry(ctx, ev, &routeTrace{tracer: tracer, span: span, traceID: sc.TraceID()})
	d.Trace = sc
	switch d.Verdict {
	case Dropped:
		tracing.EndProcess(span, tracing.VerdictDrop, d.Module, "", d.Attempts)
	case Failed:
		tracing.EndProcess(span, tracing.VerdictDeadLetter, d.Module, fmt.Sprintf("module %s: %s", d.Module, d.Reason), d.Attempts)
	default:
		tracing.EndProcess(span, tracing.VerdictDeliver, "", "", d.Attempts)
	}
	return d
}
