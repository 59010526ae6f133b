package router

import (
	"time"

	"github.com/wasmrouter/wasmrouter/event"
)

// A stream's cursor: the position up to which every event is settled, kept in the log.

// advance records that every event up to pos is settled: the cursor moves (durable with the
// log's next commit) and the lag follows.
func (s *stream) advance(pos uint64) {
	if pos <= s.pos {
		return
	}
	s.pos = pos
	if !s.dryRun && (!s.replay || s.rate > 0 || time.Since(s.storedAt) >= replayCursorEvery) {
		s.storeCursor()
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

// storeCursor hands the stream's position to the log (durable with its next commit).
func (s *stream) storeCursor() {
	s.e.store.SetCursor(s.cursor, s.pos)
	s.stored = s.pos
	if s.replay {
		s.storedAt = time.Now()
	}
}

// flushCursor hands over a replay's last move, which advance may have held back.
func (s *stream) flushCursor() {
	if s.replay && !s.dryRun && s.pos > s.stored {
		s.storeCursor()
	}
}

// Position is the stream's settled seq.
func (s *stream) Position() uint64 { return s.pos }

// CursorName is the store cursor of a (route, target) stream; cluster is set for targets in
// "all" mode, where each cluster keeps its own position.
func CursorName(route, target, cluster string) string {
	if cluster == "" {
		return event.DeliveryCursorPrefix + route + "/" + target
	}
	return event.DeliveryCursorPrefix + route + "/" + target + "@" + cluster
}

// DeadLetterCursor is the store cursor of a route's dead-letter stream (a dead-letter ID).
func DeadLetterCursor(route string) string { return "deadletter/" + route }

// ackedCursor holds the last seq known to be acknowledged to its source: set at a graceful
// stop, it tells the next start that no redelivery can be of an event logged before it.
const ackedCursor = "ingest/acknowledged"
