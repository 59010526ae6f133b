package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/backoff"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
)

// The confirm window of a stream: the events published and not yet settled, in log order,
// their confirmations, and what a refusal or an outage does to them.

type pendingEvent struct {
	seq      uint64
	ev       *event.Event
	msgs     []pendingMsg
	attempts int
	dead     bool // dead-lettered for this target
	size     int  // what it counts in the window's bytes
	// route and tgt are set for an event read from the log's file whose one message was
	// encoded from the log's bytes (loggedMessage): once that message is written, the entry
	// lets go of the event and the message (released), so that the window holds no copy of
	// what it published, and builds them again from the log, the same, if they are needed again
	// (a refusal, an outage, a dead letter). BENCHMARKS.md, "Memory", "The window lets go of
	// what it published from the log".
	route    *Route
	tgt      *config.TargetSpec
	released bool
	// one holds msgs when the event makes a single message, as nearly every event does: one
	// allocation per event instead of three (BENCHMARKS.md, "Memory").
	one [1]pendingMsg
}

// pendingEvents recycles the window's entries once settled.
var pendingEvents = sync.Pool{New: func() any { return new(pendingEvent) }}

func newPendingEvent(ev *event.Event) *pendingEvent {
	pe := pendingEvents.Get().(*pendingEvent)
	pe.seq, pe.ev, pe.attempts = ev.Seq, ev, 1
	pe.msgs = pe.one[:0]
	return pe
}

// freePendingEvent gives back an entry taken off the window, which nothing holds any more,
// and its messages' header tables (each made for its message by routerHeaders).
func freePendingEvent(pe *pendingEvent) {
	for i := range pe.msgs {
		freeHeaderTable(pe.msgs[i].out.msg.Headers)
	}
	*pe = pendingEvent{}
	pendingEvents.Put(pe)
}

type pendingMsg struct {
	out  outMsg
	conf event.Confirmation // nil: not published (yet, or again after an outage)
	done bool
	// With tracing: the process span (parent of each publish's send span), and the send span of
	// the publish in flight.
	parent trace.SpanContext
	span   trace.Span
	seq    uint64
}

// endSpan ends the send span of the publish in flight, if any: err nil for a confirm.
func (m *pendingMsg) endSpan(err error) {
	if m.span != nil {
		tracing.EndSend(m.span, err)
		m.span = nil
	}
}

// publishFrom publishes, in order, the messages of the window from its i-th event on.
func (s *stream) publishFrom(ctx context.Context, i int) {
	for _, pe := range s.inflight[i:] {
		for j := range pe.msgs {
			if !s.publish(ctx, &pe.msgs[j]) {
				return
			}
		}
		s.letGo(pe)
	}
}

// letGo drops the event and the message of an entry built from the log's bytes once its
// message is written: only a resend or a dead letter needs them again, and reread builds them
// from the log.
func (s *stream) letGo(pe *pendingEvent) {
	if pe.route == nil || pe.released || len(pe.msgs) != 1 {
		return
	}
	m := &pe.msgs[0]
	if m.conf == nil && !m.done {
		return
	}
	m.out = outMsg{}
	pe.ev = nil
	pe.released = true
}

// allLetGo reports whether every entry of the window from the i-th on let go of its event
// and its message (letGo), and the batch read had no event that did not become one.
func (s *stream) allLetGo(i int) bool {
	for _, pe := range s.inflight[i:] {
		if !pe.released {
			return false
		}
	}
	return true
}

// reread gives an entry that let go of its event (letGo) the event and its message again,
// read from the log and built as admit built them, for the route and target of then: the same
// exchange, key, properties, body and header entries.
func (s *stream) reread(pe *pendingEvent) error {
	if !pe.released {
		return nil
	}
	rs, ok := s.e.store.(rawHeadersScanner)
	if !ok {
		return fmt.Errorf("stream %s: seq %d: the log cannot be read again", s.cursor, pe.seq)
	}
	var ev *event.Event
	if _, err := rs.ScanBoundedRawHeaders(pe.seq, 1, 1, nil, func(e *event.Event) bool {
		ev = e
		return false
	}); err != nil {
		return fmt.Errorf("stream %s: reading seq %d again: %w", s.cursor, pe.seq, err)
	}
	if ev == nil || ev.Seq != pe.seq {
		// Removed by the log's retention while in flight (counted lost there): the stream
		// starts again from its cursor, which skips what the log no longer has.
		return fmt.Errorf("stream %s: seq %d, in flight, is no longer in the log", s.cursor, pe.seq)
	}
	d := Decision{Verdict: Pass, Attempts: 1, Event: ev}
	m, ok := s.loggedMessage(pe.route, pe.tgt, ev, &d)
	if !ok {
		// Served from the ring, decoded: messagesFor builds the same message.
		msgs, err := buildMessages(pe.route, pe.tgt, ev, &d, s.replay, nil)
		if err != nil || len(msgs) != 1 {
			return fmt.Errorf("stream %s: seq %d: building its message again: %v", s.cursor, pe.seq, err)
		}
		m = msgs[0]
	}
	pe.ev = ev
	pe.msgs[0].out = m
	pe.released = false
	return nil
}

// publish sends one message; false means an outage began.
func (s *stream) publish(ctx context.Context, m *pendingMsg) bool {
	if s.outage {
		return false
	}
	if s.e.tracer != nil && m.parent.IsValid() {
		// Each publish has its send span, and the copy names it as its parent.
		msg := &m.out.msg
		m.span = s.e.tracer.StartSend(m.parent, tracing.Delivery{
			Route: s.route, Target: s.target, Cluster: s.pub.Cluster(), Exchange: msg.Exchange,
			RoutingKey: msg.RoutingKey, MessageID: msg.Props.MessageID, Seq: m.seq, Replay: s.replay,
		}, msg.Headers)
	}
	c, err := publishSafely(ctx, s.pub, &m.out.msg)
	if err != nil {
		m.endSpan(err)
		s.enterOutage(err)
		return false
	}
	m.conf = c
	return true
}

func (s *stream) enterOutage(err error) {
	if !s.outage {
		s.log.Warn("target unreachable; events wait in the log", "cluster", s.pub.Cluster(), "error", err)
	}
	s.outage = true
}

// settle takes confirmed events off the head of the window, in order.
func (s *stream) settle(ctx context.Context) error {
	// The cursor moves once for what this call settles, before anything that may wait (a
	// refusal's backoff): moving it per event cost a lock, two map writes and a gauge update per
	// event for a position only the next commit makes durable.
	settled := false
	for len(s.inflight) > 0 {
		h := s.inflight[0]
		for i := range h.msgs {
			m := &h.msgs[i]
			if m.done {
				continue
			}
			if m.conf == nil {
				s.advanceSettled(settled)
				return nil // waiting to be published again
			}
			select {
			case <-m.conf.Done():
			default:
				s.advanceSettled(settled)
				return nil
			}
			err := m.conf.Err()
			switch {
			case err == nil:
				m.done = true
				m.endSpan(nil)
				s.delivered.Inc()
				if s.replay {
					s.replayed.Inc()
				}
			case event.IsOutage(err):
				m.conf = nil
				m.endSpan(err)
				s.enterOutage(err)
				s.advanceSettled(settled)
				return nil
			default:
				s.advanceSettled(settled)
				return s.refused(ctx, h, err)
			}
		}
		if len(h.msgs) > 0 && !h.dead && s.onDelivered != nil {
			s.onDelivered()
		}
		s.inflightBytes -= h.size
		s.inflight[0] = nil
		s.inflight = s.inflight[1:]
		freePendingEvent(h)
		settled = true
	}
	s.advanceSettled(settled)
	return nil
}

// advanceSettled moves the cursor past the events settle took off the window, if any: to just
// before the new head, or to the last event read when the window is empty.
func (s *stream) advanceSettled(settled bool) {
	if !settled {
		return
	}
	if len(s.inflight) == 0 {
		s.advance(s.next - 1)
	} else {
		s.advance(s.inflight[0].seq - 1)
	}
}

// refused handles a broker refusal at the head of the window: once the event's tries are
// spent it is dead-lettered for this target; otherwise, after one backoff, every message of the
// window the broker refused goes out again, in order. A deleted exchange or a full queue refuses
// a whole window at once, and one backoff covers all of it.
func (s *stream) refused(ctx context.Context, h *pendingEvent, err error) error {
	topo := s.e.topo.Load()
	r := topo.Route(s.route)
	if r == nil {
		return errRouteGone
	}
	if tgt := topo.Targets[s.target]; tgt != nil && tgt.Unroutable == config.UnroutableDrop &&
		errors.Is(err, event.ErrUnroutable) {
		// No queue for it, and the target says that is fine: dropped, counted.
		s.e.metrics.EventsUnroutable.WithLabelValues(s.route, s.target).Inc()
		for i := range h.msgs {
			h.msgs[i].done = true
			h.msgs[i].endSpan(nil)
		}
		return nil
	}
	if h.attempts >= r.Spec.Retry.Attempts {
		if err := s.reread(h); err != nil {
			return err
		}
		isNew, derr := s.e.deadLetter(s.route, s.target, h.ev, err.Error(), h.attempts)
		if derr != nil {
			return derr
		}
		if s.onFailed != nil {
			s.onFailed(h.seq, s.target, err.Error(), isNew)
		}
		for i := range h.msgs {
			h.msgs[i].done = true
			if sp := h.msgs[i].span; sp != nil {
				tracing.FailSend(sp, err.Error(), h.attempts)
				h.msgs[i].span = nil
			}
		}
		h.dead = true
		return nil
	}
	s.log.Debug("publish refused; retrying", "seq", h.seq, "attempt", h.attempts, "error", err)
	waitCtx, cancel := untilClosed(ctx, s.stop)
	defer cancel()
	if !backoff.Sleep(waitCtx, retryDelay(r.Spec.Retry, h.attempts)) {
		if ctx.Err() == nil {
			return errDraining
		}
		return ctx.Err()
	}
	for _, pe := range s.inflight {
		bumped := false
		for i := range pe.msgs {
			m := &pe.msgs[i]
			if m.done || m.conf == nil || !isDone(m.conf) {
				continue
			}
			if cerr := m.conf.Err(); cerr != nil && !event.IsOutage(cerr) {
				m.conf = nil
				m.endSpan(cerr)
				s.retries.Inc()
				if !bumped {
					pe.attempts++
					bumped = true
				}
			}
		}
	}
	return s.republish(ctx)
}

// republish sends again, in order, every message of the window that is waiting for it.
func (s *stream) republish(ctx context.Context) error {
	release := s.pub.Hold()
	defer release()
	for _, pe := range s.inflight {
		for i := range pe.msgs {
			m := &pe.msgs[i]
			if m.done || m.conf != nil {
				continue
			}
			if err := s.reread(pe); err != nil {
				return err
			}
			if !s.publish(ctx, m) {
				return nil
			}
		}
		s.letGo(pe)
	}
	return nil
}

func isDone(c event.Confirmation) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// headConfirm is the confirm the head of the window waits on, or nil.
func (s *stream) headConfirm() event.Confirmation {
	if len(s.inflight) == 0 {
		return nil
	}
	for i := range s.inflight[0].msgs {
		m := &s.inflight[0].msgs[i]
		if !m.done {
			return m.conf
		}
	}
	return nil
}

// recover waits out an outage: every message in flight is resolved (the publisher fails what
// the lost connection took with it), then, once the target is back, republished in order.
func (s *stream) recover(ctx context.Context) error {
	for _, pe := range s.inflight {
		for i := range pe.msgs {
			m := &pe.msgs[i]
			if m.done || m.conf == nil {
				continue
			}
			select {
			case <-m.conf.Done():
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := m.conf.Err(); err == nil {
				m.done = true
				m.endSpan(nil)
				s.delivered.Inc()
				if s.replay {
					s.replayed.Inc()
				}
			} else if event.IsOutage(err) {
				m.conf = nil
				m.endSpan(err)
			}
			// A refusal keeps its confirm: settle handles it in order.
		}
	}
	waitCtx, cancel := untilClosed(ctx, s.stop)
	defer cancel()
	if err := s.pub.WaitReady(waitCtx); err != nil {
		if ctx.Err() == nil {
			return nil // draining: run ends the stream
		}
		return err
	}
	s.outage = false
	if err := s.republish(ctx); err != nil {
		return err
	}
	if s.outage {
		// Ready, then refused at once: wait a little longer before the next try, so that no
		// such state can make the stream spin.
		s.recoverTries++
		if !backoff.Sleep(waitCtx, backoff.Exponential(50*time.Millisecond, 5*time.Second, s.recoverTries)) && ctx.Err() != nil {
			return ctx.Err()
		}
		return nil
	}
	s.recoverTries = 0
	s.log.Info("target reachable again; resent what was in flight", "cluster", s.pub.Cluster(), "events", len(s.inflight))
	return nil
}
