package router

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/backoff"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
	"go.opentelemetry.io/otel/trace"
)

// runDeadLetters publishes a route's dead letters, in the order they were recorded, to its
// dead_letter target. Up to deadLetterWindow of them are in flight at once, as deliveries are: a
// target that refused for half a minute at 1,000 events a second leaves tens of thousands, and
// one broker round trip each would take longer than the trouble did. They are settled in order:
// a confirmed one is done; any other is sent again on its own (sendDeadLetter waits out an
// outage, retries a refusal); the cursor moves past settled ones only.
func (e *Engine) runDeadLetters(ctx context.Context, route string, drain <-chan struct{}) {
	// Draining cuts waits short: a dead letter not yet confirmed is published again after a
	// restart.
	ctx, cancel := untilClosed(ctx, drain)
	defer cancel()
	topo := e.topo.Load()
	r := topo.Route(route)
	tgt := topo.Targets[r.Spec.DeadLetter]
	log := e.log.With("route", route, "dead_letter", tgt.Name)
	pubs, err := e.publishersFor(tgt)
	if err != nil {
		log.Error("opening the dead-letter target", "error", err)
		return
	}
	pub := pubs[0].pub
	defer pub.Close()
	cursor := DeadLetterCursor(route)
	pos, err := e.store.Cursor(cursor)
	if err != nil {
		log.Error("reading dead-letter cursor", "error", err)
		return
	}
	read := pos // the last dead letter published or skipped; pos is the last settled
	var inFlight []pendingDeadLetter
	defer func() { endDeadLetterSpans(inFlight, context.Canceled) }()
	for {
		wake := e.dlqWake.wait()
		if room := deadLetterWindow - len(inFlight); room > 0 {
			var batch []event.DeadLetter
			err := e.store.DeadLetters(read+1, room, func(dl event.DeadLetter) bool {
				batch = append(batch, dl)
				return true
			})
			if err != nil {
				log.Error("reading dead letters", "error", err)
			}
			if len(batch) > 0 {
				release := pub.Hold()
				for _, dl := range batch {
					p, err := e.startDeadLetter(ctx, pub, tgt.Exchange, route, dl)
					if err != nil {
						release()
						log.Error("reading a dead letter's event", "seq", dl.Seq, "error", err)
						return
					}
					inFlight = append(inFlight, p)
					read = dl.ID
				}
				release()
			}
		}
		if len(inFlight) == 0 {
			select {
			case <-wake:
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second): // dead letters added by another process (redrive tools)
			}
			continue
		}
		head := &inFlight[0]
		if !head.skip && head.err == nil {
			var more <-chan struct{}
			if len(inFlight) < deadLetterWindow {
				more = wake
			}
			select {
			case <-head.confirm.Done():
				head.err = head.confirm.Err()
			case <-more:
				continue // read what was recorded meanwhile, then wait again
			case <-ctx.Done():
				return
			}
		}
		if !head.skip && head.err != nil {
			// The window's try was the first attempt; the rest are sendDeadLetter's.
			if head.err = e.sendDeadLetter(ctx, pub, head.dl, &head.msg, 2); head.err != nil {
				return // ctx ended
			}
		}
		if head.span != nil {
			tracing.EndSend(head.span, nil)
		}
		pos = head.dl.ID
		e.store.SetCursor(cursor, pos)
		inFlight[0] = pendingDeadLetter{}
		inFlight = inFlight[1:]
	}
}

// deadLetterWindow bounds the dead letters published and not yet settled: enough to keep the
// target busy, few enough to send again after an outage.
const deadLetterWindow = 256

// pendingDeadLetter is one dead letter between its publish and its settling.
type pendingDeadLetter struct {
	dl      event.DeadLetter
	msg     event.Message
	skip    bool       // another route's, or its event is gone: nothing to send
	span    trace.Span // nil without tracing
	confirm event.Confirmation
	err     error // of the publish or, once settled, of the confirm
}

// startDeadLetter publishes dl if it is the route's and its event is still in the log. An error
// is the log's: the dead letter cannot be built.
func (e *Engine) startDeadLetter(ctx context.Context, pub Publisher, exchange, route string, dl event.DeadLetter) (pendingDeadLetter, error) {
	p := pendingDeadLetter{dl: dl}
	if dl.Route != route {
		p.skip = true
		return p, nil
	}
	ev, err := e.store.Get(dl.Seq)
	if errors.Is(err, event.ErrNotFound) {
		e.log.Warn("dead letter's event no longer in the log (retention)", "route", dl.Route, "seq", dl.Seq)
		p.skip = true
		return p, nil
	}
	if err != nil {
		return p, err
	}
	p.msg = deadLetterMessage(exchange, dl.Route, ev, dl.Reason, dl.Attempts)
	if e.tracer != nil {
		// In the event's trace, under its receive span (the process span that failed it is gone
		// by now, possibly with the process), with error status and the reason.
		p.span = e.tracer.StartSend(e.tracer.ReceiveContext(ev), tracing.Delivery{
			Route: dl.Route, Target: e.topo.Load().Route(dl.Route).Spec.DeadLetter, Cluster: pub.Cluster(),
			Exchange: exchange, RoutingKey: ev.RoutingKey, MessageID: ev.Props.MessageID, Seq: ev.Seq,
			DeadLetter: dl.Reason,
		}, p.msg.Headers)
	}
	p.confirm, p.err = publishSafely(ctx, pub, &p.msg)
	return p, nil
}

// endDeadLetterSpans ends the spans of dead letters left unsettled.
func endDeadLetterSpans(pending []pendingDeadLetter, err error) {
	for i := range pending {
		if pending[i].span != nil {
			tracing.EndSend(pending[i].span, err)
		}
	}
}

// deadLetterAttempts bounds how often a refused dead letter is published again. A dead-letter
// target that refuses (its exchange gone, no queue bound under the mandatory flag) would
// otherwise be retried forever, one ERROR line each time, and hold every later dead letter of
// the route back. The dead letter stays in the log either way: `router dlq list` shows it and
// `router dlq replay` redrives it once the target takes it again.
const deadLetterAttempts = 5

// refusedLogEvery bounds the log lines about refused dead letters: one per route and interval.
const refusedLogEvery = time.Minute

// sendDeadLetter publishes a dead letter until the broker confirms it, or ctx ends; an outage
// is waited out, a refusal is tried deadLetterAttempts times and then left in the log.
func (e *Engine) sendDeadLetter(ctx context.Context, pub Publisher, dl event.DeadLetter, msg *event.Message, firstAttempt int) error {
	for attempt := firstAttempt; ; attempt++ {
		c, err := publishSafely(ctx, pub, msg)
		if err == nil {
			if err = event.WaitDone(ctx, c); ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if err == nil {
			return nil
		}
		if event.IsOutage(err) {
			if werr := pub.WaitReady(ctx); werr != nil {
				return werr
			}
		} else if attempt >= deadLetterAttempts {
			e.deadLetterRefused(dl, err)
			return nil
		} else {
			e.log.Debug("dead-letter target refused a message; retrying", "route", dl.Route, "seq", dl.Seq, "error", err)
		}
		if !backoff.Sleep(ctx, backoff.Exponential(200*time.Millisecond, 10*time.Second, attempt)) {
			return ctx.Err()
		}
	}
}

// refusedDeadLetters keeps, per route, what Status says of the dead letters the route's
// dead-letter target kept refusing, and when the route last logged one.
type refusedDeadLetters struct {
	mu     sync.Mutex
	routes map[string]*RefusedDeadLetters
	logged map[string]time.Time
}

// add records a refused dead letter and reports whether to log it: at most once per
// refusedLogEvery for the route.
func (r *refusedDeadLetters) add(dl event.DeadLetter, err error, now time.Time) (logIt bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.routes == nil {
		r.routes, r.logged = map[string]*RefusedDeadLetters{}, map[string]time.Time{}
	}
	st := r.routes[dl.Route]
	if st == nil {
		st = &RefusedDeadLetters{Route: dl.Route}
		r.routes[dl.Route] = st
	}
	st.Count++
	st.LastSeq, st.LastError, st.Last = dl.Seq, err.Error(), now.UTC()
	if last, ok := r.logged[dl.Route]; ok && now.Sub(last) < refusedLogEvery {
		return false
	}
	r.logged[dl.Route] = now
	return true
}

// snapshot is every route's record, by route name.
func (r *refusedDeadLetters) snapshot() []RefusedDeadLetters {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RefusedDeadLetters, 0, len(r.routes))
	for _, st := range r.routes {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b RefusedDeadLetters) int { return strings.Compare(a.Route, b.Route) })
	return out
}

// deadLetterRefused counts a dead letter its target kept refusing (the metric and the status)
// and logs it, at most once per refusedLogEvery for the route.
func (e *Engine) deadLetterRefused(dl event.DeadLetter, err error) {
	if e.metrics != nil {
		e.metrics.DeadLettersRefused.WithLabelValues(dl.Route).Inc()
	}
	if !e.refused.add(dl, err, time.Now()) {
		return
	}
	e.log.Error("dead-letter target refuses dead letters; they stay in the log (router dlq list, router dlq replay)",
		"route", dl.Route, "seq", dl.Seq, "attempts", deadLetterAttempts, "error", err,
		"hint", "bind a queue to the dead-letter target's exchange", "next_log_in", refusedLogEvery)
}
