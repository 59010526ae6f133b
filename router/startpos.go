package router

import (
	"fmt"
)

// cursorLister is what a log offers for the start-up rule below: whether a cursor exists at
// all, and a durable write of a new one. The bbolt log has both; a log without them keeps
// the older rule (a pair with no cursor starts at the beginning).
type cursorLister interface {
	Cursors() (map[string]uint64, error)
	ResetCursor(name string, seq uint64) error
}

// boundedClaim is a claim on a shared log's pair that no router delivered yet: StartAfter is
// the lowest of the bounds the routers that claimed it gave (PairClaimer).
type boundedClaim interface {
	StartAfter() (after uint64, ok bool)
}

// startPosition is where a live stream begins: after its cursor, or, for a (route, target)
// pair that has none (a route or target added since the last run, or renamed), at the end of
// the log. Starting a new pair at the beginning would resend the whole retention window to it
// at once; `router replay` gives it the past on request. The new cursor is made durable
// before the stream delivers anything, so that a crash right after cannot make the pair look
// new again and skip what arrived in between. The end is the log's as the stream was made,
// before the sources ran: on a log several routers share the pair's claim may be granted
// only after this router (or another) logged events for it, which must not be skipped.
func (e *Engine) startPosition(s *stream) (uint64, error) {
	lister, ok := e.store.(cursorLister)
	if s.replay || s.dryRun || !ok {
		return e.store.Cursor(s.cursor) // a job's own cursor: 0 is its start
	}
	cursors, err := lister.Cursors()
	if err != nil {
		return 0, fmt.Errorf("stream %s: reading cursors: %w", s.cursor, err)
	}
	if pos, ok := cursors[s.cursor]; ok {
		return pos, nil
	}
	last := min(e.store.LastSeq(), s.configuredAt)
	if b, ok := s.claim.(boundedClaim); ok {
		if after, bounded := b.StartAfter(); bounded {
			last = min(last, after)
		}
	}
	if err := lister.ResetCursor(s.cursor, last); err != nil {
		return 0, fmt.Errorf("stream %s: creating cursor: %w", s.cursor, err)
	}
	s.startedAt.Store(last)
	s.newPair.Store(true)
	if first := e.store.FirstSeq(); last > 0 && first > 0 && last >= first {
		s.log.Info("new delivery stream starts at the end of the log; `router replay` gives it the past",
			"start_after_seq", last, "earlier_events", last-first+1)
	} else {
		s.log.Info("new delivery stream starts at the end of the log", "start_after_seq", last)
	}
	return last, nil
}
