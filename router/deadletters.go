package router

import (
	"context"
	"errors"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
	"github.com/wasmrouter/wasmrouter/store"
)

// DeadLetterCursor is the store cursor of a route's dead-letter stream (a dead-letter ID).
func DeadLetterCursor(route string) string { return "deadletter/" + route }

// runDeadLetters publishes a route's dead letters, in the order they were recorded, to its
// dead_letter target, each confirmed before the next. Dead letters are rare, so one at a time
// keeps this simple; an outage waits, a refusal is retried until the target takes it.
func (e *Engine) runDeadLetters(ctx context.Context, route string, drain <-chan struct{}) {
	// Draining cuts waits short: a dead letter not yet confirmed is published again after a
	// restart.
	ctx, cancel := untilClosed(ctx, drain)
	defer cancel()
	topo := e.topo.Load()
	r := topo.Route(route)
	tgt := topo.Targets[r.Spec.DeadLetter]
	pub := e.publishersFor(tgt)[0].pub
	defer pub.Close()
	log := e.log.With("route", route, "dead_letter", tgt.Name)
	cursor := DeadLetterCursor(route)
	pos, err := e.store.Cursor(cursor)
	if err != nil {
		log.Error("reading dead-letter cursor", "error", err)
		return
	}
	for {
		wake := e.dlqWake.wait()
		var batch []store.DeadLetter
		err := e.store.DeadLetters(pos+1, 256, func(dl store.DeadLetter) bool {
			batch = append(batch, dl)
			return true
		})
		if err != nil {
			log.Error("reading dead letters", "error", err)
		}
		for _, dl := range batch {
			if dl.Route == route {
				if err := e.publishDeadLetter(ctx, pub, tgt.Exchange, dl); err != nil {
					return // ctx ended
				}
			}
			pos = dl.ID
			e.store.SetCursor(cursor, pos)
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-wake:
		case <-drain:
			return
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second): // dead letters added by another process (redrive tools)
		}
	}
}

func (e *Engine) publishDeadLetter(ctx context.Context, pub publisher, exchange string, dl store.DeadLetter) error {
	ev, err := e.store.Get(dl.Seq)
	if errors.Is(err, store.ErrNotFound) {
		e.log.Warn("dead letter's event no longer in the log (retention)", "route", dl.Route, "seq", dl.Seq)
		return nil
	}
	if err != nil {
		return err
	}
	msg := deadLetterMessage(dl.Route, ev, dl.Reason, dl.Attempts, false)
	if e.tracer != nil {
		// In the event's trace, under its receive span (the process span that failed it is gone
		// by now, possibly with the process), with error status and the reason.
		span := e.tracer.StartSend(e.tracer.ReceiveContext(ev), tracing.Delivery{
			Route: dl.Route, Target: e.topo.Load().Route(dl.Route).Spec.DeadLetter, Cluster: pub.Cluster(),
			Exchange: exchange, RoutingKey: ev.RoutingKey, MessageID: ev.Props.MessageID, Seq: ev.Seq,
			DeadLetter: dl.Reason,
		}, msg.Headers)
		var err error
		defer func() { tracing.EndSend(span, err) }()
		err = e.sendDeadLetter(ctx, pub, exchange, dl, ev, msg)
		return err
	}
	return e.sendDeadLetter(ctx, pub, exchange, dl, ev, msg)
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
func (e *Engine) sendDeadLetter(ctx context.Context, pub publisher, exchange string, dl store.DeadLetter, ev *event.Event, msg amqp.Publishing) error {
	for attempt := 1; ; attempt++ {
		c, err := pub.Publish(ctx, exchange, ev.RoutingKey, msg)
		if err == nil {
			select {
			case <-c.Done():
				err = c.Err()
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err == nil {
			return nil
		}
		if isOutage(err) {
			if werr := pub.WaitReady(ctx); werr != nil {
				return werr
			}
		} else if attempt >= deadLetterAttempts {
			e.deadLetterRefused(dl, err)
			return nil
		} else {
			e.log.Debug("dead-letter target refused a message; retrying", "route", dl.Route, "seq", dl.Seq, "error", err)
		}
		if !sleepCtx(ctx, min(time.Duration(attempt)*200*time.Millisecond, 10*time.Second)) {
			return ctx.Err()
		}
	}
}

// deadLetterRefused counts a dead letter its target kept refusing and logs it, at most once
// per refusedLogEvery for the route.
func (e *Engine) deadLetterRefused(dl store.DeadLetter, err error) {
	if e.metrics != nil {
		e.metrics.DeadLettersRefused.WithLabelValues(dl.Route).Inc()
	}
	now := time.Now().UnixNano()
	last, _ := e.refusedLogged.Load(dl.Route)
	if last != nil && now-last.(int64) < int64(refusedLogEvery) {
		return
	}
	e.refusedLogged.Store(dl.Route, now)
	e.log.Error("dead-letter target refuses dead letters; they stay in the log (router dlq list, router dlq replay)",
		"route", dl.Route, "seq", dl.Seq, "attempts", deadLetterAttempts, "error", err,
		"hint", "bind a queue to the dead-letter target's exchange", "next_log_in", refusedLogEvery)
}
