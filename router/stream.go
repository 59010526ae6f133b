package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
)

// stream delivers one route's events to one target (on one cluster, for targets in "all" mode)
// in log order, from its own cursor: read a batch from the log, run it through the route's
// modules, publish without waiting, then settle confirms in order and advance the cursor to the
// highest seq whose messages are all confirmed (or dead-lettered).
type stream struct {
	e      *Engine
	route  string
	target string
	cursor string // the store cursor this stream advances
	pub    publisher
	window int // events in flight
	log    *slog.Logger
	stop   <-chan struct{} // closed when the engine drains: finish what is in flight, read no more

	// Bounds and marks, for replays; zero values mean a live stream.
	from, to    uint64
	keep        func(*event.Event) bool
	replay      bool
	rate        float64
	dryRun      bool
	progress    func(seq uint64, delivered bool)
	onDelivered func() // an event's messages were all confirmed
	onDropped   func(seq uint64)
	// onFailed reports an event given up: a module failed it (target "") or the broker
	// refused it every try; deadLettered is false when its dead letter existed already.
	onFailed func(seq uint64, target, reason string, deadLettered bool)

	delivered, replayed, retries prometheus.Counter
	lag                          prometheus.Gauge

	pos      uint64 // every event up to here is settled
	next     uint64 // the next seq to read
	inflight []*pendingEvent
	outage   bool
	// recoverPause grows while the target turns out unreachable right after it seemed ready.
	recoverPause time.Duration
	paced        int // events published under rate, for pacing
	started      time.Time

	// For a pair that had no cursor: it started after this seq (see startPosition).
	newPair   atomic.Bool
	startedAt atomic.Uint64
}

type pendingEvent struct {
	seq      uint64
	ev       *event.Event
	msgs     []pendingMsg
	attempts int
	dead     bool // dead-lettered for this target
}

type pendingMsg struct {
	out  outMsg
	conf confirmation // nil: not published (yet, or again after an outage)
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

// errDraining ends a stream that was waiting out a retry when the engine began to stop.
var errDraining = errors.New("draining")

// untilClosed is ctx, also cancelled when stop closes.
func untilClosed(ctx context.Context, stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	if stop != nil {
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, cancel
}

// errStreamRestarted ends the send spans of publishes a failed stream forgets (it sends them
// again from its cursor).
var errStreamRestarted = errors.New("stream restarted; the message is sent again")

// errRouteGone ends a stream whose route or target no longer exists in the topology.
var errRouteGone = errors.New("route or target no longer configured")

func (s *stream) run(ctx context.Context) error {
	if s.window <= 0 {
		s.window = 1024
	}
	if s.from > 0 {
		s.pos = s.from - 1
	} else {
		pos, err := s.e.startPosition(s)
		if err != nil {
			return err
		}
		s.pos = pos
	}
	s.next = s.pos + 1
	s.started = time.Now()
	defer s.pub.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		notify := s.e.store.Notify()
		if s.outage {
			if isClosed(s.stop) {
				return nil // what is unsettled is resent after a restart
			}
			if err := s.recover(ctx); err != nil {
				return err
			}
			continue
		}
		stopping := isClosed(s.stop)
		if stopping && (len(s.inflight) == 0 || s.outage) {
			return nil
		}
		if !stopping && len(s.inflight) < s.window && s.next <= s.last() {
			if err := s.fill(ctx); err != nil {
				return err
			}
		}
		if err := s.settle(ctx); err != nil {
			if errors.Is(err, errDraining) {
				return nil
			}
			return err
		}
		if s.finished() {
			return nil
		}
		if len(s.inflight) == 0 {
			if s.next <= s.last() {
				continue
			}
			select {
			case <-notify:
			case <-s.stop:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		if s.outage {
			continue
		}
		head := s.headConfirm()
		if head == nil { // settle made progress or hit an outage
			continue
		}
		var more <-chan struct{}
		if len(s.inflight) < s.window && !stopping {
			if s.next <= s.last() {
				continue
			}
			more = notify
		}
		select {
		case <-head.Done():
		case <-more:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// last is the highest seq this stream may read.
func (s *stream) last() uint64 {
	l := s.e.store.LastSeq()
	if s.to > 0 && s.to < l {
		return s.to
	}
	return l
}

func (s *stream) finished() bool {
	return s.to > 0 && s.next > s.to && len(s.inflight) == 0
}

// fill reads the next batch from the log and publishes what the route makes of it.
func (s *stream) fill(ctx context.Context) error {
	// One topology for the whole batch: each event goes through one generation of the
	// configuration, and a reload retires the old one only once no batch uses it.
	topo := s.e.acquireTopology()
	defer topo.release()
	r := topo.Route(s.route)
	tgt := topo.Targets[s.target]
	if r == nil || tgt == nil {
		return errRouteGone
	}
	batch := s.e.batchPool.Get().(*[]*event.Event)
	defer func() { clear(*batch); *batch = (*batch)[:0]; s.e.batchPool.Put(batch) }()
	limit := s.window - len(s.inflight)
	if s.rate > 0 {
		// Paced publishing sleeps in admit: a batch of about a tenth of a second lets settle
		// (and the cursor, which a resumed job starts from) keep up.
		limit = min(limit, max(1, int(s.rate/10)))
	}
	if s.to > 0 && uint64(limit) > s.to-s.next+1 {
		limit = int(s.to - s.next + 1)
	}
	// Events are collected first and processed after the scan: guests and publishes must not
	// run inside a read transaction.
	next, err := s.e.store.Scan(s.next, limit, r.Matches, func(ev *event.Event) bool {
		*batch = append(*batch, ev)
		return true
	})
	if err != nil {
		return fmt.Errorf("stream %s: reading log: %w", s.cursor, err)
	}
	s.next = next
	firstNew := len(s.inflight)
	for _, ev := range *batch {
		if s.keep != nil && !s.keep(ev) {
			continue
		}
		if err := s.admit(ctx, r, tgt, ev); err != nil {
			return err
		}
	}
	if s.rate <= 0 {
		// The batch's messages are published together, after its guests have run, so that
		// they leave in a few large writes (see amqpx.Publisher.Hold).
		release := s.pub.Hold()
		s.publishFrom(ctx, firstNew)
		release()
	}
	if len(s.inflight) == 0 {
		s.advance(s.next - 1)
	}
	return nil
}

// publishFrom publishes, in order, the messages of the window from its i-th event on.
func (s *stream) publishFrom(ctx context.Context, i int) {
	for _, pe := range s.inflight[i:] {
		for j := range pe.msgs {
			if !s.publish(ctx, &pe.msgs[j]) {
				return
			}
		}
	}
}

// admit runs one event through the route and adds it to the window; under a rate limit it
// also publishes its messages, each at its time.
func (s *stream) admit(ctx context.Context, r *Route, tgt *config.TargetSpec, ev *event.Event) error {
	var d Decision
	first := true
	tracer := s.e.tracer
	if s.dryRun {
		tracer = nil // a dry run delivers nothing: nothing to trace
	}
	switch {
	case s.replay:
		// A replay decides afresh: it runs the routes as they are configured now.
		d = runRoute(ctx, tracer, r, ev, true)
	case !r.hasModules() && tracer == nil:
		// Nothing to decide (and no span to record), so nothing to share among the route's
		// streams: the shared cache would cost an allocation and two locks per event and
		// keep its last 8192 events alive.
		d = Decision{Verdict: Pass, Attempts: 1, Event: ev}
	default:
		d, first = r.decisions.decide(ctx, r, ev, tracer)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	pe := &pendingEvent{seq: ev.Seq, ev: ev, attempts: 1}
	switch d.Verdict {
	case Dropped:
		if first && !s.replay {
			s.e.metrics.EventsDropped.WithLabelValues(s.route).Inc()
		}
		if s.onDropped != nil {
			s.onDropped(ev.Seq)
		}
	case Failed:
		// Every stream records it: the record is the same (route, seq) one, so it is kept once,
		// and a stream that decided alone cannot skip its target silently.
		if !s.dryRun {
			reason := fmt.Sprintf("module %s: %s", d.Module, d.Reason)
			isNew, err := s.e.deadLetter(s.route, "", ev, reason, d.Attempts)
			if err != nil {
				return err
			}
			if s.onFailed != nil {
				s.onFailed(ev.Seq, "", reason, isNew)
			}
		}
	default:
		for _, m := range messagesFor(r, tgt, ev, &d, s.replay, nil) {
			pe.msgs = append(pe.msgs, pendingMsg{out: m, parent: d.Trace, seq: ev.Seq})
		}
	}
	if s.progress != nil {
		s.progress(ev.Seq, len(pe.msgs) > 0)
	}
	if s.dryRun {
		pe.msgs = nil
	}
	s.inflight = append(s.inflight, pe)
	if s.rate <= 0 {
		return nil // fill publishes the batch
	}
	for i := range pe.msgs {
		if err := s.pace(ctx); err != nil {
			return err
		}
		if !s.publish(ctx, &pe.msgs[i]) {
			break
		}
	}
	return nil
}

// publish sends one message; false means an outage began.
func (s *stream) publish(ctx context.Context, m *pendingMsg) bool {
	if s.outage {
		return false
	}
	if s.e.tracer != nil && m.parent.IsValid() {
		// Each publish has its send span, and the copy names it as its parent.
		m.span = s.e.tracer.StartSend(m.parent, tracing.Delivery{
			Route: s.route, Target: s.target, Cluster: s.pub.Cluster(), Exchange: m.out.exchange,
			RoutingKey: m.out.key, MessageID: m.out.msg.MessageId, Seq: m.seq, Replay: s.replay,
		}, m.out.msg.Headers)
	}
	c, err := s.pub.Publish(ctx, m.out.exchange, m.out.key, m.out.msg)
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
	for len(s.inflight) > 0 {
		h := s.inflight[0]
		for i := range h.msgs {
			m := &h.msgs[i]
			if m.done {
				continue
			}
			if m.conf == nil {
				return nil // waiting to be published again
			}
			select {
			case <-m.conf.Done():
			default:
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
			case isOutage(err):
				m.conf = nil
				m.endSpan(err)
				s.enterOutage(err)
				return nil
			default:
				return s.refused(ctx, h, err)
			}
		}
		if len(h.msgs) > 0 && !h.dead && s.onDelivered != nil {
			s.onDelivered()
		}
		s.inflight[0] = nil
		s.inflight = s.inflight[1:]
		if len(s.inflight) == 0 {
			s.advance(s.next - 1)
		} else {
			s.advance(s.inflight[0].seq - 1)
		}
	}
	return nil
}

// refused handles a broker refusal at the head of the window: once the event's tries are
// spent it is dead-lettered for this target; otherwise, after one backoff, every message of the
// window the broker refused goes out again, in order. A deleted exchange or a full queue refuses
// a whole window at once, and one backoff covers all of it.
func (s *stream) refused(ctx context.Context, h *pendingEvent, err error) error {
	r := s.e.topo.Load().Route(s.route)
	if r == nil {
		return errRouteGone
	}
	if h.attempts >= r.Spec.Retry.Attempts {
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
	if !sleepCtx(waitCtx, backoff(r.Spec.Retry, h.attempts)) {
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
			if cerr := m.conf.Err(); cerr != nil && !isOutage(cerr) {
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
	s.republish(ctx)
	return nil
}

// republish sends again, in order, every message of the window that is waiting for it.
func (s *stream) republish(ctx context.Context) {
	release := s.pub.Hold()
	defer release()
	for _, pe := range s.inflight {
		for i := range pe.msgs {
			m := &pe.msgs[i]
			if m.done || m.conf != nil {
				continue
			}
			if !s.publish(ctx, m) {
				return
			}
		}
	}
}

func isDone(c confirmation) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// headConfirm is the confirm the head of the window waits on, or nil.
func (s *stream) headConfirm() confirmation {
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
			} else if isOutage(err) {
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
	s.republish(ctx)
	if s.outage {
		// Ready, then refused at once: wait a little longer before the next try, so that no
		// such state can make the stream spin.
		s.recoverPause = min(max(2*s.recoverPause, 50*time.Millisecond), 5*time.Second)
		if !sleepCtx(waitCtx, s.recoverPause) && ctx.Err() != nil {
			return ctx.Err()
		}
		return nil
	}
	s.recoverPause = 0
	s.log.Info("target reachable again; resent what was in flight", "cluster", s.pub.Cluster(), "events", len(s.inflight))
	return nil
}

func (s *stream) advance(pos uint64) {
	if pos <= s.pos {
		return
	}
	s.pos = pos
	if !s.dryRun {
		s.e.store.SetCursor(s.cursor, pos)
	}
	if s.lag != nil {
		last := s.e.store.LastSeq()
		if last > pos {
			s.lag.Set(float64(last - pos))
		} else {
			s.lag.Set(0)
		}
	}
}

// pace holds publishes to the configured rate (replays only).
func (s *stream) pace(ctx context.Context) error {
	if s.rate <= 0 {
		return nil
	}
	s.paced++
	due := s.started.Add(time.Duration(float64(s.paced) / s.rate * float64(time.Second)))
	if wait := time.Until(due); wait > 0 && !sleepCtx(ctx, wait) {
		return ctx.Err()
	}
	return nil
}

// reset forgets what was in flight, so that run starts again from the stored cursor (after a
// failure: whatever was published but not settled is sent again).
func (s *stream) reset() {
	if s.e.tracer != nil {
		for _, pe := range s.inflight {
			for i := range pe.msgs {
				pe.msgs[i].endSpan(errStreamRestarted)
			}
		}
	}
	s.inflight = nil
	s.outage = false
}

// Position is the stream's settled seq.
func (s *stream) Position() uint64 { return s.pos }
