package router

import (
	"context"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/backoff"
)

// A replay's bounds and pacing: where a bounded stream stops, and how fast it may publish.

// bounds are what makes a stream a replay's: its range, selection, pace and marks. The zero
// value is a live stream: no end, every event, no pacing.
type bounds struct {
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

	paced   int // events published under rate, for pacing
	started time.Time
	// stored and storedAt: the position last handed to the log and when (see advance).
	stored   uint64
	storedAt time.Time
}

// replayCursorEvery is how often an unpaced replay hands its cursor to the log. Each move
// alone is a commit with its fdatasync within 100 ms: a replay's moves every 100 ms were
// 4% of its CPU on a busy machine, where a replay runs slowly (BENCHMARKS.md, "Replay's
// cursor and refills"). A replay cut short resends at most this much more; one that
// stops or fails hands its last position over as it ends.
const replayCursorEvery = time.Second

// replayRefill: an unpaced replay reads again once an eighth of its window has settled (by
// count or bytes), or when the rest of its range fits. A stream reads again after every
// confirm frame the broker sends: for a replay, always behind, that was a wake-up, a read
// transaction and a batch per frame; the window still holds at least seven eighths of its
// events in flight (BENCHMARKS.md, "Replay's cursor and refills").
const replayRefill = 8

// wantsFill reports whether the stream reads more now: the window has room and, for an
// unpaced replay, room enough (replayRefill).
func (s *stream) wantsFill() bool {
	if !s.hasRoom() {
		return false
	}
	if !s.replay || s.rate > 0 || len(s.inflight) == 0 {
		return true
	}
	free := s.window - len(s.inflight)
	return free >= s.window/replayRefill || s.windowBytes-s.inflightBytes >= s.windowBytes/replayRefill ||
		s.to-s.next < uint64(free)
}

// refillConfirm is what an unpaced replay whose window has too little room to read waits on:
// the confirm of the event whose settling makes room enough, rather than head's, so that it
// wakes once per refill instead of once per confirm. Confirms arrive in publish order; one
// resolved out of order only brings the next look at the window sooner.
func (s *stream) refillConfirm(head event.Confirmation) event.Confirmation {
	if !s.replay || s.rate > 0 || !s.hasRoom() && len(s.inflight) < s.window {
		return head // full by bytes, or live: the head's confirm
	}
	i := s.window/replayRefill - (s.window - len(s.inflight)) - 1
	if i <= 0 || i >= len(s.inflight) {
		return head
	}
	for j := range s.inflight[i].msgs {
		if m := &s.inflight[i].msgs[j]; !m.done && m.conf != nil && !isDone(m.conf) {
			return m.conf // a resolved one would not wait: the head's then
		}
	}
	return head
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

// pace holds publishes to the configured rate (replays only).
func (s *stream) pace(ctx context.Context) error {
	if s.rate <= 0 {
		return nil
	}
	s.paced++
	due := s.started.Add(time.Duration(float64(s.paced) / s.rate * float64(time.Second)))
	if wait := time.Until(due); wait > 0 && !backoff.Sleep(ctx, wait) {
		return ctx.Err()
	}
	return nil
}
