package streamlog

import "github.com/wasmrouter/wasmrouter/event"

// ClaimPair is Claim as the engine asks for it: the engine delivers a pair only while this
// router holds its lease (router.PairClaimer).
func (s *Store) ClaimPair(cursor string) (event.PairClaim, error) {
	l, err := s.Claim(cursor)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// ClaimPair claims on the current log; ErrClosed while it is being reopened.
func (r *Reopening) ClaimPair(cursor string) (event.PairClaim, error) {
	if s := r.Current(); s != nil {
		return s.ClaimPair(cursor)
	}
	return nil, ErrClosed
}
