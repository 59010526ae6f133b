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
