package router

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
)

// source is the ingest of one source into the log. A message is acknowledged only once its
// event is durably in the log; acknowledgements go out in delivery order, coalesced (each
// acknowledges every earlier delivery: one per commit).
type source struct {
	e    *Engine
	spec config.SourceSpec
	port Source
	log  *slog.Logger

	consuming atomic.Bool
	// failedUntil holds consumption back after the log refused an append (disk trouble), so
	// that requeued messages do not spin through a broken store.
	failedUntil atomic.Int64

	settled chan settlement

	// Redeliveries are compared only with the events whose acknowledgement may have been lost:
	// the broker holds at most prefetch messages unacknowledged per channel, so a redelivered
	// message that is already logged is among this source's last events before its channel went
	// down (or before the router last stopped). An identical message published again later is a
	// new event (Celery sends identical bodies for identical arguments).
	recentMu    sync.Mutex
	recent      []uint64 // ring of the last seqs appended from this source
	recentNext  int
	dedupMu     sync.Mutex
	dedup       event.Window
	wasConsumer bool

	consumed, stored, duplicates, unmatched prometheus.Counter
	oversize, undecodable, unencodable      prometheus.Counter
}

// settlement is the log's answer for one delivery, handed to the acker in delivery order.
type settlement struct {
	d   *event.Delivery
	err error
	// With tracing: the message's receive span, ended once it is acknowledged or refused.
	span trace.Span
	seq  uint64
	dup  bool
}

func (e *Engine) newSource(spec config.SourceSpec, port Source) *source {
	s := &source{
		e:           e,
		spec:        spec,
		port:        port,
		log:         e.log.With("source", spec.Name, "queue", spec.Queue),
		settled:     make(chan settlement, spec.Prefetch+64),
		consumed:    e.metrics.EventsConsumed.WithLabelValues(spec.Name),
		stored:      e.metrics.EventsStored.WithLabelValues(spec.Name),
		duplicates:  e.metrics.EventsDuplicate.WithLabelValues(spec.Name),
		unmatched:   e.metrics.EventsUnmatched.WithLabelValues(spec.Name),
		oversize:    e.metrics.EventsRejected.WithLabelValues(spec.Name, "oversize"),
		undecodable: e.metrics.EventsRejected.WithLabelValues(spec.Name, "undecodable"),
		unencodable: e.metrics.EventsRejected.WithLabelValues(spec.Name, "unencodable"),
	}
	s.recent = make([]uint64, 0, spec.Prefetch+64)
	return s
}

func (s *source) setDedup(w event.Window) {
	s.dedupMu.Lock()
	s.dedup = w
	s.dedupMu.Unlock()
}

func (s *source) dedupWindow() event.Window {
	s.dedupMu.Lock()
	defer s.dedupMu.Unlock()
	return s.dedup
}

// remember records an appended seq (appender goroutine).
func (s *source) remember(seq uint64) {
	s.recentMu.Lock()
	if len(s.recent) < cap(s.recent) {
		s.recent = append(s.recent, seq)
	} else {
		s.recent[s.recentNext] = seq
		s.recentNext = (s.recentNext + 1) % len(s.recent)
	}
	s.recentMu.Unlock()
}

// consumingChanged moves the dedup window when the channel goes down: what it left
// unacknowledged is among the events this source logged last.
func (s *source) consumingChanged(up bool) {
	s.consuming.Store(up)
	if up {
		s.wasConsumer = true
		return
	}
	if !s.wasConsumer {
		return
	}
	s.recentMu.Lock()
	var w event.Window
	if n := len(s.recent); n > 0 {
		w.From = s.recent[s.recentNext%n]
		w.To = s.recent[(s.recentNext+n-1)%n]
	}
	s.recentMu.Unlock()
	if !w.Empty() {
		s.setDedup(w)
	}
}

// run consumes until ctx ends; then it waits for the log to settle what was consumed and
// acknowledges it before returning.
func (s *source) run(ctx context.Context) {
	ackerDone := make(chan struct{})
	go func() { defer close(ackerDone); s.acker() }()
	err := s.port.Consume(ctx, s.handle, s.consumingChanged, s.decodeFailed)
	if err != nil && ctx.Err() == nil {
		s.log.Error("source stopped", "error", err)
	}
	s.consuming.Store(false)
	// Everything handed to the log is settled before the last acknowledgements go out.
	flushed := make(chan struct{})
	s.e.store.Barrier(func(error) { close(flushed) })
	<-flushed
	close(s.settled)
	<-ackerDone
}

// decodeFailed counts a message the source could not decode (the source's log line says
// what happens to it and how to move it aside).
func (s *source) decodeFailed(error) { s.undecodable.Inc() }

// handle takes one delivery from the consumer goroutine, in order.
func (s *source) handle(d *event.Delivery) {
	s.consumed.Inc()
	if until := s.failedUntil.Load(); until > 0 {
		if wait := time.Until(time.Unix(0, until)); wait > 0 {
			time.Sleep(wait)
		}
	}
	ev := d.Event
	if d.Undecodable != "" {
		// The client could not have decoded the headers (framefilter.go in amqpx); rejected,
		// the broker dead-letters its own copy, headers intact, if the queue has a
		// dead-letter exchange. The connection and every other message go on.
		s.undecodable.Inc()
		s.log.Error("message with undecodable headers rejected (the broker dead-letters it to the queue's dead_letter_exchange, or drops it without one)",
			"reason", d.Undecodable, "message_id", ev.Props.MessageID, "routing_key", ev.RoutingKey,
			"dead_letter_exchange", s.spec.DeadLetterExchange)
		s.e.store.Barrier(func(error) { s.settled <- settlement{d: d, err: errOversize} })
		return
	}
	// The configuration in force: router.max_message_size and the routes may change by a reload.
	topo := s.e.topo.Load()
	if maxSize := topo.Config.Router.MaxMessageSize; maxSize > 0 && int64(len(ev.Body)) > maxSize {
		// Too big to log: the broker dead-letters it if the queue has a dead-letter exchange.
		s.oversize.Inc()
		s.log.Error("message over max_message_size rejected", "size", len(ev.Body),
			"max", maxSize, "message_id", ev.Props.MessageID, "routing_key", ev.RoutingKey)
		s.e.store.Barrier(func(error) { s.settled <- settlement{d: d, err: errOversize} })
		return
	}
	// An assigned message id derives from the fingerprint of the message as received, so that a
	// redelivery gets the same id, and the log matches redeliveries by that fingerprint; for
	// every other message the log fingerprints the event itself, from its one encoding.
	var fp event.Fingerprint
	if ev.Props.MessageID == "" {
		fp = s.e.store.Fingerprint(ev)
		ev.Props.MessageID = AssignedMessageID(fp, ev.IngestTime)
	}
	// Matched once: the event carries the match to the streams that read it from memory.
	var matched bool
	ev.Routes, matched = topo.matchRoutes(s.spec.Name, ev.RoutingKey)
	var dedup event.Window
	if d.Redelivered {
		dedup = s.dedupWindow()
		if _, shared := s.e.store.(PairClaimer); shared {
			// The first copy may have been logged by another router, at seqs this source never
			// saw: a shared log judges by what the router that wrote it can have left
			// unacknowledged.
			dedup = event.Window{From: 1, To: math.MaxUint64}
		}
	}
	var span trace.Span
	if s.e.tracer != nil {
		span = s.e.tracer.StartReceive(ev, s.spec.Queue) // the event has its message id now
	}
	s.e.store.Append(ev, fp, dedup, func(seq uint64, dup bool, err error) {
		switch {
		case err != nil:
		case dup:
			s.duplicates.Inc()
		default:
			s.remember(seq)
			s.stored.Inc()
			if !matched {
				s.unmatched.Inc()
			}
		}
		s.settled <- settlement{d: d, err: err, span: span, seq: seq, dup: dup}
	})
}

// errOversize marks a delivery to reject without requeueing (over max_message_size, or with
// undecodable headers).
var errOversize = &oversizeError{}

type oversizeError struct{}

func (*oversizeError) Error() string { return "message over max_message_size" }

// acker acknowledges settled deliveries. It drains everything already settled and acks the
// last with multiple=true: one frame for a whole commit. A delivery the log failed to take is
// requeued at once, before any later ack could cover it.
func (s *source) acker() {
	var received []settlement // with tracing: acknowledged by the next ack
	for st := range s.settled {
		last := (*event.Delivery)(nil)
		for {
			if st.err != nil {
				if last != nil {
					s.ack(last)
					last = nil
					received = endReceived(received)
				}
				s.refuse(st)
				if st.span != nil {
					tracing.EndReceive(st.span, 0, false, st.err)
				}
			} else {
				last = st.d
				if st.span != nil {
					received = append(received, st)
				}
			}
			var ok bool
			select {
			case st, ok = <-s.settled:
				if ok {
					continue
				}
			default:
			}
			break
		}
		if last != nil {
			s.ack(last)
			received = endReceived(received)
		}
	}
}

// endReceived ends the receive spans of acknowledged messages.
func endReceived(received []settlement) []settlement {
	for i, st := range received {
		tracing.EndReceive(st.span, st.seq, st.dup, nil)
		received[i] = settlement{}
	}
	return received[:0]
}

func (s *source) ack(d *event.Delivery) {
	if err := d.Ack.AckThrough(); err != nil {
		s.log.Debug("ack failed; the broker will redeliver", "error", err)
	}
}

func (s *source) refuse(st settlement) {
	if st.err == errOversize {
		_ = st.d.Ack.Reject(false)
		return
	}
	if errors.Is(st.err, event.ErrUnsupported) {
		// This message can never be logged; requeueing it would wedge the queue.
		s.unencodable.Inc()
		s.log.Error("message cannot be logged; rejected (the broker dead-letters it if the queue has a dead-letter exchange)",
			"error", st.err, "message_id", st.d.Event.Props.MessageID, "routing_key", st.d.Event.RoutingKey)
		_ = st.d.Ack.Reject(false)
		return
	}
	// One line per hold-back period, not one per requeued message.
	now := time.Now()
	if now.UnixNano() >= s.failedUntil.Load() {
		s.log.Error("log append failed; messages requeued and consumption held back for a second", "error", st.err)
	}
	s.failedUntil.Store(now.Add(time.Second).UnixNano())
	if err := st.d.Ack.Reject(true); err != nil {
		s.log.Debug("requeue failed; the broker will redeliver", "error", err)
	}
}
