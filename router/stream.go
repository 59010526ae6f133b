package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
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
	pub    Publisher
	window int // events in flight
	// windowBytes bounds the memory of the events in flight as well (their MemSize and their
	// messages' bodies), so that large messages cannot make the window hold the process's
	// memory hostage; the window always takes at least one event.
	windowBytes   int
	inflightBytes int
	log           *slog.Logger
	stop          <-chan struct{} // closed when the engine drains: finish what is in flight, read no more
	// supervised: run again after a failure or a lost pair, on the same publisher, which the
	// supervisor closes at the end.
	supervised bool

	bounds // a replay's; the zero value is a live stream

	delivered, replayed, retries prometheus.Counter
	lag                          prometheus.Gauge

	pos      uint64 // every event up to here is settled
	next     uint64 // the next seq to read
	inflight []*pendingEvent
	outs     []outMsg // scratch for the messages of the event admit builds
	// chunks are what the log read the batch's events into (chunkScanner), given back once
	// every one of them let go.
	chunks [][]byte
	outage bool
	// recoverTries counts the times in a row the target turned out unreachable right after it
	// seemed ready: the pause before the next try grows with it.
	recoverTries int
	// readTo is next for releaseRead, which reads it from other streams' goroutines; 0 until
	// the stream first reads.
	readTo atomic.Uint64

	// For a pair that had no cursor: it started after this seq (see startPosition).
	newPair   atomic.Bool
	startedAt atomic.Uint64
	// configuredAt is the log's last seq when the stream was made, before the sources ran.
	configuredAt uint64
	// On a log several routers share: the claim made before the sources ran (taken by the
	// first run), and the claim the stream delivers under.
	preclaimed event.PairClaim
	claim      event.PairClaim
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

// errPairLost ends a live stream whose pair another router took over (a shared log).
var errPairLost = errors.New("pair taken over by another router")

func (s *stream) run(ctx context.Context) error {
	claimer, shared := s.e.store.(PairClaimer)
	if !shared || s.replay || s.dryRun || s.from > 0 {
		return s.deliver(ctx)
	}
	claim := s.preclaimed
	s.preclaimed = nil
	if claim == nil {
		var err error
		if claim, err = claimer.ClaimPair(s.cursor, s.configuredAt); err != nil {
			return fmt.Errorf("stream %s: claiming the pair: %w", s.cursor, err)
		}
	}
	s.claim = claim
	select {
	case <-claim.Granted():
	case <-claim.Lost():
		return errPairLost
	case <-s.stop:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	// Delivering a pair another router holds would duplicate it without bound: stop at once.
	held, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-claim.Lost():
			cancel()
		case <-held.Done():
		}
	}()
	err := s.deliver(held)
	if isClosed(claim.Lost()) && ctx.Err() == nil {
		if s.lag != nil {
			s.lag.Set(0) // the router that holds the pair now reports its lag
		}
		return errPairLost
	}
	return err
}

// deliver runs the stream from its cursor (or its replay's start).
func (s *stream) deliver(ctx context.Context) error {
	if s.window <= 0 {
		s.window = 1024
	}
	if s.windowBytes <= 0 {
		s.windowBytes = defaultWindowBytes
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
	s.stored = s.pos
	defer s.flushCursor()
	if !s.supervised {
		defer s.pub.Close()
	}
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
		if !stopping && s.hasRoom() && s.next <= s.last() {
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
		if s.hasRoom() && !stopping {
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

// defaultWindowBytes is a stream's windowBytes unless the engine sets one. 2 MiB holds the
// window's count of 1,024 events of 1 KiB (an event read back from the log and its message,
// which shares the event's body), about 100 ms at the fastest rate measured here and many
// times a confirm's latency; at 1 MiB the CPU per event measured higher (BENCHMARKS.md,
// "Memory": 4 MiB before, where the count bound first with each body counted twice).
const defaultWindowBytes = 2 << 20

// msgOverhead is what a message counts in the window besides a body of its own: its headers
// (a new table with the x-router-* entries) and the publish's bookkeeping.
const msgOverhead = 256

// sharesBody reports whether a message's body is the event's own (not transformed, not
// emitted): then the window counts those bytes once, with the event. Counted twice, 1 KiB
// events filled a 2 MiB window at about 750 instead of its 1,024 (BENCHMARKS.md, "Replay at
// the publisher's window").
func sharesBody(body, evBody []byte) bool {
	return len(body) > 0 && len(evBody) > 0 && &body[0] == &evBody[0] && len(body) == len(evBody)
}

// hasRoom reports whether the window takes more events.
func (s *stream) hasRoom() bool {
	return len(s.inflight) < s.window && s.inflightBytes < s.windowBytes
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
	s.countRemoved()
	// Events are collected first and processed after the scan: guests and publishes must not
	// run inside a read transaction.
	room := s.windowBytes - s.inflightBytes
	// What an event will count in the window (admit counts it exactly): itself and one
	// message, which shares its body unless a module made a new one.
	// budget is the same bound in the events' own MemSize, so that the log decodes only the
	// events take keeps.
	perEvent := func(ev *event.Event) int { return ev.MemSize() + msgOverhead }
	budget := room
	if r.hasModules() {
		perEvent = func(ev *event.Event) int { return 2 * ev.MemSize() }
		budget = (room + 1) / 2
	}
	take := func(ev *event.Event) bool {
		*batch = append(*batch, ev)
		room -= perEvent(ev)
		return room > 0
	}
	var next uint64
	var err error
	var chunks chunkScanner
	rawHeaders := s.encodesLoggedHeaders(r)
	if cs, ok := s.e.store.(chunkScanner); ok && rawHeaders {
		chunks = cs
		defer func() {
			// Not given back: some event of the batch may still be referred to (below).
			clear(s.chunks)
			s.chunks = s.chunks[:0]
		}()
		next, err = cs.ScanBoundedRawHeadersIn(&s.chunks, s.next, limit, max(1, budget), r.keeps, take)
	} else if rs, ok := s.e.store.(rawHeadersScanner); ok && rawHeaders {
		next, err = rs.ScanBoundedRawHeaders(s.next, limit, max(1, budget), r.keeps, take)
	} else if bs, ok := s.e.store.(boundedScanner); ok {
		next, err = bs.ScanBounded(s.next, limit, max(1, budget), r.keeps, take)
	} else {
		next, err = s.e.store.Scan(s.next, limit, r.keeps, take)
	}
	if err != nil {
		return fmt.Errorf("stream %s: reading log: %w", s.cursor, err)
	}
	s.next = next
	if !s.replay && !s.dryRun {
		s.readTo.Store(next)
		s.e.releaseRead()
	}
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
		// they leave in a few large writes (see Publisher.Hold).
		release := s.pub.Hold()
		s.publishFrom(ctx, firstNew)
		release()
	}
	if chunks != nil && len(s.chunks) > 0 && s.allLetGo(firstNew) {
		// Every event of the batch went into the window and let go of once written: nothing
		// refers to the chunks it was read into (the batch is cleared on return).
		chunks.RecycleChunks(&s.chunks)
	}
	if len(s.inflight) == 0 {
		s.advance(s.next - 1)
	}
	return nil
}

// releaseRead tells the log which recent events every live stream has read, so that its ring
// of recent events holds only what is still to be read: a stream that keeps up reads each
// commit from memory, and nothing is kept for readers that have taken it (BENCHMARKS.md,
// "Memory", "The ring trimmed to what is unread"). A stream
// that reads again what it read (after a restart) reads it from disk.
func (e *Engine) releaseRead() {
	rel, ok := e.store.(readReleaser)
	if !ok {
		return
	}
	readers := e.readers.Load()
	if readers == nil || len(*readers) == 0 {
		return
	}
	below := uint64(math.MaxUint64)
	for _, s := range *readers {
		below = min(below, s.readTo.Load())
	}
	if below > 1 {
		rel.ReleaseRead(below)
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
	pe := newPendingEvent(ev)
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
		var msgs []outMsg
		var err error
		if m, ok := s.loggedMessage(r, tgt, ev, &d); ok {
			msgs = append(s.outs[:0], m)
			// Only a log that reads raw headers (rawHeadersScanner) hands events whose message
			// is encoded from its bytes, and it can read them again.
			pe.route, pe.tgt = r, tgt // let go of once published (letGo), read again (reread)
		} else {
			if err := s.decodeHeaders(ev); err != nil {
				return fmt.Errorf("stream %s: reading log: %w", s.cursor, err)
			}
			msgs, err = buildMessages(r, tgt, ev, &d, s.replay, s.outs[:0])
		}
		if err != nil {
			if !s.dryRun {
				isNew, derr := s.e.deadLetter(s.route, s.target, ev, err.Error(), 1)
				if derr != nil {
					return derr
				}
				if s.onFailed != nil {
					s.onFailed(ev.Seq, s.target, err.Error(), isNew)
				}
			}
			break
		}
		for _, m := range msgs {
			pe.msgs = append(pe.msgs, pendingMsg{out: m, parent: d.Trace, seq: ev.Seq})
		}
		clear(msgs) // the scratch holds no event past this one
		s.outs = msgs[:0]
	}
	if s.progress != nil {
		s.progress(ev.Seq, len(pe.msgs) > 0)
	}
	if s.dryRun {
		pe.msgs = nil
	}
	pe.size = ev.MemSize()
	for i := range pe.msgs {
		pe.size += msgOverhead
		if body := pe.msgs[i].out.msg.Body; !sharesBody(body, ev.Body) {
			pe.size += len(body)
		}
	}
	s.inflight = append(s.inflight, pe)
	s.inflightBytes += pe.size
	if s.rate <= 0 {
		return nil // fill publishes the batch
	}
	for i := range pe.msgs {
		if err := s.pace(ctx); err != nil {
			return err
		}
		if !s.publish(ctx, &pe.msgs[i]) {
			return nil
		}
	}
	s.letGo(pe)
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
	s.inflightBytes = 0
	s.outage = false
}

// countRemoved counts, on a log several routers share, the positions a live pair never
// delivered because the log's retention (the broker's, for a stream) removed them first. The
// bbolt log counts its own removals against every cursor (store/retention.go).
func (s *stream) countRemoved() {
	if s.replay || s.dryRun {
		return
	}
	if _, shared := s.e.store.(PairClaimer); !shared {
		return
	}
	if first := s.e.store.FirstSeq(); first > s.next {
		s.e.metrics.StoreLost.Add(float64(first - s.next))
		s.log.Warn("the log removed events this pair had not delivered yet", "removed", first-s.next, "from_seq", s.next, "first_seq", first)
		s.next = first
	}
}
