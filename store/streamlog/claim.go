package streamlog

import "github.com/wasmrouter/wasmrouter/event"

// ClaimPair is Claim as the engine asks for it: the engine delivers a pair only while this
// router holds its lease (router.PairClaimer).
func (s *Store) ClaimPair(cursor string, startAfter uint64) (event.PairClaim, error) {
	l, err := s.ClaimAfter(cursor, startAfter)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// ClaimPair claims on the current log; ErrClosed while it is being reopened.
func (r *Reopening) ClaimPair(cursor string, startAfter uint64) (event.PairClaim, error) {
	if s := r.Current(); s != nil {
		return s.ClaimPair(cursor, startAfter)
	}
	return nil, ErrClosed
}

// Cursors lists the cursors that exist, for the engine's rule that a pair with none starts at
// the end of the log (router/startpos.go): this router's own, and the delivery cursors of the
// pairs it holds whose token carries a position. A pair whose token has none was never
// delivered by any router: it is new.
func (s *Store) Cursors() (map[string]uint64, error) {
	s.mu.Lock()
	out := make(map[string]uint64, len(s.local))
	for name, pos := range s.local {
		if !isDelivery(name) {
			out[name] = pos
		}
	}
	leases := make(map[string]*Lease, len(s.leases))
	wrote := map[string]bool{}
	for name, l := range s.leases {
		leases[name] = l
		_, wrote[name] = s.written[name]
	}
	s.mu.Unlock()
	for name, l := range leases {
		if !isClosedCh(l.Granted()) || isClosedCh(l.Lost()) {
			continue
		}
		// A token this router wrote may not be back from the queue yet; it has a position.
		if _, set := l.Position(); set || wrote[name] {
			pos, err := s.Cursor(name)
			if err != nil {
				return nil, err
			}
			out[name] = pos
		}
	}
	return out, nil
}

// ResetCursor sets a cursor to seq. A delivery cursor's position is written into its pair's
// token before ResetCursor returns (the pair must be held), so that a new pair's start at
// the end of the log survives this router's death: the next holder starts there too.
func (s *Store) ResetCursor(name string, seq uint64) error {
	if !isDelivery(name) {
		s.mu.Lock()
		s.local[name] = seq
		s.mu.Unlock()
		return nil
	}
	l, err := s.Claim(name)
	if err != nil {
		return err
	}
	if err := l.Advance(seq + 1); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.local[name] = max(s.local[name], seq)
	s.written[name] = max(s.written[name], seq)
	return nil
}

func isClosedCh(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Cursors lists the current log's cursors; ErrClosed while it is being reopened.
func (r *Reopening) Cursors() (map[string]uint64, error) {
	if s := r.Current(); s != nil {
		return s.Cursors()
	}
	return nil, ErrClosed
}

// ResetCursor sets a cursor on the current log; ErrClosed while it is being reopened.
func (r *Reopening) ResetCursor(name string, seq uint64) error {
	if s := r.Current(); s != nil {
		return s.ResetCursor(name, seq)
	}
	return ErrClosed
}

// Holder names this router in the pairs' tokens and in the status.
func (s *Store) Holder() string { return s.holder }

// PairHolder says which router delivers the pair of a delivery cursor: this one while it
// holds the pair's lease; otherwise the router that took it last, as recorded in the control
// stream ("" when none did, or the record names this router, which no longer holds it).
func (s *Store) PairHolder(cursor string) (holder string, here bool) {
	s.mu.Lock()
	l := s.leases[cursor]
	s.mu.Unlock()
	if l != nil && isClosedCh(l.Granted()) && !isClosedCh(l.Lost()) {
		return s.holder, true
	}
	h := s.control.Holders()[cursor]
	if h.Holder == s.holder {
		return "", false
	}
	return h.Holder, false
}

// noteWhenGranted records in the control stream that this router took the pair, once it does.
func (s *Store) noteWhenGranted(cursor string, l *Lease) {
	select {
	case <-l.Granted():
	case <-l.Lost():
		return
	case <-s.stop:
		return
	}
	_ = s.control.noteHeld(cursor, s.holder) // only the status reads it; a failed write is not a failed pair
}

// Holder names this router.
func (r *Reopening) Holder() string { return r.holder }

// PairHolder asks the current log; nobody is known while it is being reopened.
func (r *Reopening) PairHolder(cursor string) (string, bool) {
	if s := r.Current(); s != nil {
		return s.PairHolder(cursor)
	}
	return "", false
}

// PairPosition asks the current log; nothing is known while it is being reopened.
func (r *Reopening) PairPosition(cursor string) (uint64, bool) {
	if s := r.Current(); s != nil {
		return s.PairPosition(cursor)
	}
	return 0, false
}
