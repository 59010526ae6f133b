package app

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/logquery"
	"github.com/wasmrouter/wasmrouter/store"
)

// DeadLetterRecord is a dead letter as `router dlq list` prints it (one per line) and
// GET /api/v1/dlq answers it (in an array).
type DeadLetterRecord = logquery.DeadLetterRecord

// NewDeadLetterRecord converts a stored dead letter.
func NewDeadLetterRecord(dl store.DeadLetter) DeadLetterRecord {
	return logquery.NewDeadLetterRecord(dl)
}

// DeadLetterSelection picks dead letters: by id, or by route and age; redriven ones only with
// All. Empty fields select everything.
type DeadLetterSelection struct {
	IDs   []uint64
	Route string
	Since time.Time
	All   bool
}

// matches checks a dead letter's route, time and mark; SelectDeadLetters checks its id.
func (s *DeadLetterSelection) matches(dl store.DeadLetter) bool {
	return (s.Route == "" || dl.Route == s.Route) &&
		(s.Since.IsZero() || !dl.Time.Before(s.Since)) &&
		(s.All || !dl.Redriven)
}

// DeadLetterReader reads the dead letters of a log (router.Log has it, the bbolt log and the
// stream log implement it).
type DeadLetterReader interface {
	DeadLetters(fromID uint64, limit int, fn func(store.DeadLetter) bool) error
}

// SelectDeadLetters returns the selected dead letters in ID order, at most limit (0: all).
func SelectDeadLetters(st DeadLetterReader, sel *DeadLetterSelection, limit int) ([]store.DeadLetter, error) {
	// Selected ids bound the scan: the rest of a long history need not be read.
	first, last := uint64(1), uint64(0)
	var ids map[uint64]bool
	if len(sel.IDs) > 0 {
		first, last = slices.Min(sel.IDs), slices.Max(sel.IDs)
		ids = make(map[uint64]bool, len(sel.IDs))
		for _, id := range sel.IDs {
			ids[id] = true
		}
	}
	var out []store.DeadLetter
	err := st.DeadLetters(first, 0, func(dl store.DeadLetter) bool {
		if (ids == nil || ids[dl.ID]) && sel.matches(dl) {
			out = append(out, dl)
		}
		return (limit <= 0 || len(out) < limit) && (last == 0 || dl.ID < last)
	})
	return out, err
}

// ErrBadSelection marks a dead-letter selection that cannot be redriven: the caller's mistake,
// not the router's.
var ErrBadSelection = errors.New("bad dead-letter selection")

type badSelection string

func (e badSelection) Error() string { return string(e) }
func (badSelection) Unwrap() error   { return ErrBadSelection }

// SelectForRedrive applies the rules of `router dlq replay` and POST /api/v1/dlq/replay: ids or
// a route are required, and every id given must be selected (a redriven one only with All). An
// error wraps ErrBadSelection when the selection is at fault.
func SelectForRedrive(st DeadLetterReader, sel *DeadLetterSelection) ([]store.DeadLetter, error) {
	if len(sel.IDs) == 0 && sel.Route == "" {
		return nil, badSelection("select dead letters by id or by route")
	}
	dls, err := SelectDeadLetters(st, sel, 0)
	if err != nil {
		return nil, err
	}
	found := make(map[uint64]bool, len(dls))
	for _, dl := range dls {
		found[dl.ID] = true
	}
	var missing []uint64
	for _, id := range sel.IDs {
		if !found[id] {
			found[id] = true // named once
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, badSelection(fmt.Sprintf("no dead letter with id %v to redrive (redriven ones need --all)", missing))
	}
	return dls, nil
}
