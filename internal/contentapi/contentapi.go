// Package contentapi answers the admin API's content endpoints from a running router's log
// and engine: searches, one event with where it went, the stream of new events, and the log's
// statistics.
package contentapi

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/admin"
	"github.com/wasmrouter/wasmrouter/internal/logquery"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

// API implements admin.Content.
type API struct {
	Engine *router.Engine
	Store  Log
	// IdleEvery is how often a quiet stream calls idle (15 s when zero).
	IdleEvery time.Duration
}

var _ admin.Content = (*API)(nil)

// Log is what the content endpoints read of the router's log (part of router.Log): the
// bbolt log or the stream log shared with other routers.
type Log interface {
	logquery.StatsReader
	Notify() <-chan struct{}
}

func badRequest(err error) error {
	if errors.Is(err, logquery.ErrBadQuery) {
		return fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
	}
	return unavailable(err)
}

// unavailable marks a log that is catching up with its stream (503, try again).
func unavailable(err error) error {
	if errors.Is(err, logquery.ErrCatchingUp) {
		return fmt.Errorf("%w: %v", admin.ErrUnavailable, err)
	}
	return err
}

// Events answers GET /api/v1/events.
func (a *API) Events(ctx context.Context, query url.Values, emit func(any) error) (uint64, error) {
	q, err := logquery.ParseQuery(query, time.Now())
	if err != nil {
		return 0, badRequest(err)
	}
	resume, err := logquery.List(ctx, a.Store, &q, logquery.SearchBudget, func(ev *event.Event) error {
		return emit(logquery.NewRecord(ev))
	})
	return resume, unavailable(err)
}

// Event answers GET /api/v1/events/{seq}.
func (a *API) Event(seq uint64) (any, error) {
	if err := logquery.WaitReadable(context.Background(), a.Store); err != nil {
		return nil, unavailable(err)
	}
	ev, err := a.Store.Get(seq)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: seq %d is not in the log (it holds %d to %d)", admin.ErrNotFound, seq, a.Store.FirstSeq(), a.Store.LastSeq())
	}
	if err != nil {
		return nil, err
	}
	dead, err := logquery.DeadLettersOf(a.Store, seq)
	if err != nil {
		return nil, err
	}
	return logquery.NewDetail(ev, dead, a.Engine.Deliveries(ev, dead)), nil
}

// Follow answers GET /api/v1/events/stream.
func (a *API) Follow(ctx context.Context, query url.Values, from uint64, emit func(uint64, any) error, idle func() error) error {
	if query.Has("limit") {
		return fmt.Errorf("%w: a stream takes no limit", admin.ErrBadRequest)
	}
	q, err := logquery.ParseQuery(query, time.Now())
	if err != nil {
		return badRequest(err)
	}
	if !q.Since.IsZero() || !q.Until.IsZero() || q.To > 0 {
		return fmt.Errorf("%w: a stream takes no since, until or to_seq (from_seq starts it further back)", admin.ErrBadRequest)
	}
	q.Limit = 0
	// From the end of the log: its end as it is, not as a reopening log reads it (empty).
	if err := logquery.WaitReadable(ctx, a.Store); err != nil {
		return unavailable(err)
	}
	next := from
	if next == 0 {
		next = a.Store.LastSeq() + 1
	}
	if err := idle(); err != nil {
		return err
	}
	every := a.IdleEvery
	if every <= 0 {
		every = 15 * time.Second
	}
	quiet := time.NewTimer(every)
	defer quiet.Stop()
	for {
		notify := a.Store.Notify()
		if last := a.Store.LastSeq(); next <= last {
			sel := q
			sel.From, sel.To = next, last
			if _, err := logquery.List(ctx, a.Store, &sel, 0, func(ev *event.Event) error {
				return emit(ev.Seq, logquery.NewRecord(ev))
			}); err != nil {
				return err
			}
			next = last + 1
		}
		select {
		case <-ctx.Done():
			return nil
		case <-notify:
		case <-quiet.C:
			if err := idle(); err != nil {
				return err
			}
			quiet.Reset(every)
		}
	}
}

// LogStats answers GET /api/v1/log/stats.
func (a *API) LogStats() (any, error) {
	st, err := logquery.Stats(a.Engine.Topology().Config, a.Store)
	return st, unavailable(err)
}
