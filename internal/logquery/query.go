// Package logquery selects and renders logged events: the searches of `router log` on a
// stopped router's store and of the admin API's content endpoints in a running one, so that
// both answer alike.
package logquery

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/filters"
	"github.com/wasmrouter/wasmrouter/router"
)

// DefaultLimit is how many events a search returns unless told otherwise.
const DefaultLimit = 100

// SearchBudget bounds the records one search of the content API looks at, so that a search
// for something rare in a long log answers in about a tenth of a second (BENCHMARKS.md); the
// answer then says where to go on from.
const SearchBudget = 10_000

// MaxLimit bounds one page of the content API: a larger search is paged with from_seq.
const MaxLimit = 10000

// ErrBadQuery marks a query the caller got wrong.
var ErrBadQuery = errors.New("bad query")

// HeaderMatch selects events carrying header Name; with HasValue, one whose value, as text,
// is Value (numbers in decimal, booleans true/false).
type HeaderMatch struct {
	Name     string
	Value    string
	HasValue bool
}

// Query selects logged events. Zero fields select everything.
type Query struct {
	Since, Until time.Time
	From, To     uint64
	Source       string
	Key          string // an AMQP topic pattern over routing keys
	Headers      []HeaderMatch
	Limit        int // 0: no limit
}

// Params are the query parameters ParseQuery reads.
var Params = []string{"since", "until", "from_seq", "to_seq", "source", "key", "header", "limit"}

// ParseQuery reads the parameters of GET /api/v1/events: since and until are durations ago
// ("15m") or RFC 3339 times, header is NAME or NAME:VALUE (repeatable, all must match), limit
// defaults to DefaultLimit and is at most MaxLimit.
func ParseQuery(v url.Values, now time.Time) (Query, error) {
	q := Query{Limit: DefaultLimit}
	for name := range v {
		if !contains(Params, name) {
			// A misspelt filter would silently select everything.
			return q, fmt.Errorf("%w: unknown parameter %q (%s)", ErrBadQuery, name, strings.Join(Params, ", "))
		}
	}
	var err error
	if q.Since, err = router.ParseWhen(v.Get("since"), now); err != nil {
		return q, fmt.Errorf("%w: since: %v", ErrBadQuery, err)
	}
	if q.Until, err = router.ParseWhen(v.Get("until"), now); err != nil {
		return q, fmt.Errorf("%w: until: %v", ErrBadQuery, err)
	}
	if q.From, err = uintParam(v, "from_seq"); err != nil {
		return q, err
	}
	if q.To, err = uintParam(v, "to_seq"); err != nil {
		return q, err
	}
	if q.To > 0 && q.From > q.To {
		return q, fmt.Errorf("%w: from_seq %d is after to_seq %d", ErrBadQuery, q.From, q.To)
	}
	q.Source = v.Get("source")
	if q.Key = v.Get("key"); q.Key != "" {
		if err := filters.ValidatePattern(q.Key); err != nil {
			return q, fmt.Errorf("%w: key: %v", ErrBadQuery, err)
		}
	}
	for _, h := range v["header"] {
		m, err := ParseHeaderMatch(h)
		if err != nil {
			return q, fmt.Errorf("%w: header %v", ErrBadQuery, err)
		}
		q.Headers = append(q.Headers, m)
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return q, fmt.Errorf("%w: limit %q is not a number from 1 to %d", ErrBadQuery, s, MaxLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// ParseHeaderMatch reads a header selection, NAME or NAME:VALUE (the API's header parameter and
// the command line's --header).
func ParseHeaderMatch(s string) (HeaderMatch, error) {
	name, value, hasValue := strings.Cut(s, ":")
	if name == "" {
		return HeaderMatch{}, fmt.Errorf("%q: give NAME or NAME:VALUE", s)
	}
	return HeaderMatch{Name: name, Value: value, HasValue: hasValue}, nil
}

// Values is the query as URL parameters, ParseQuery's inverse.
func (q *Query) Values() url.Values {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.From > 0 {
		v.Set("from_seq", strconv.FormatUint(q.From, 10))
	}
	if q.To > 0 {
		v.Set("to_seq", strconv.FormatUint(q.To, 10))
	}
	if q.Source != "" {
		v.Set("source", q.Source)
	}
	if q.Key != "" {
		v.Set("key", q.Key)
	}
	for _, h := range q.Headers {
		if h.HasValue {
			v.Add("header", h.Name+":"+h.Value)
		} else {
			v.Add("header", h.Name)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

func uintParam(v url.Values, name string) (uint64, error) {
	s := v.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not a number", ErrBadQuery, name, s)
	}
	return n, nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// Keep decides from the source and routing key alone; the store skips decoding the rest of
// an event it refuses.
func (q *Query) Keep(source, key string) bool {
	return (q.Source == "" || source == q.Source) && (q.Key == "" || filters.Match(q.Key, key))
}

// Match checks what Keep cannot: ingest time and headers.
func (q *Query) Match(ev *event.Event) bool {
	if !q.Since.IsZero() && ev.IngestTime.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && ev.IngestTime.After(q.Until) {
		return false
	}
	for _, h := range q.Headers {
		v, ok := ev.Headers[h.Name]
		if !ok || (h.HasValue && HeaderText(v) != h.Value) {
			return false
		}
	}
	return true
}

// HeaderText is a header value as a search compares it: the text the JSON rendering shows,
// numbers in decimal.
func HeaderText(v any) string {
	switch x := router.HeadersJSON(event.Table{"": v})[""].(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

// ingestSkew bounds how far ingest times may run out of seq order: each source stamps its
// events when it receives them, a moment before the append that numbers them.
const ingestSkew = time.Minute

// scanStep is how many records one Scan call looks at.
const scanStep = 4096

// List calls emit for the events q selects, in seq order, at most q.Limit of them, looking at
// no more than budget records (0: no bound). It returns the seq to go on from when the budget
// ran out before the selection's end, else 0: a search over a long log answers in bounded time,
// and the caller continues it from there.
func List(ctx context.Context, st Reader, q *Query, budget int, emit func(*event.Event) error) (resume uint64, err error) {
	if err := WaitReadable(ctx, st); err != nil {
		return 0, err
	}
	next := max(q.From, st.FirstSeq())
	if !q.Since.IsZero() {
		next = max(next, SeqAtTime(st, q.Since.Add(-ingestSkew)))
	}
	last := st.LastSeq()
	if q.To > 0 {
		last = min(last, q.To)
	}
	emitted, looked, stop := 0, 0, false
	var emitErr error
	for next > 0 && next <= last && !stop {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if budget > 0 && looked >= budget {
			return next, nil
		}
		step := scanStep
		if budget > 0 {
			step = min(step, budget-looked)
		}
		n, err := st.Scan(next, step, event.ByHead(q.Keep), func(ev *event.Event) bool {
			if ev.Seq > last || (!q.Until.IsZero() && ev.IngestTime.After(q.Until.Add(ingestSkew))) {
				stop = true
				return false
			}
			if !q.Match(ev) {
				return true
			}
			if emitErr = emit(ev); emitErr != nil {
				stop = true
				return false
			}
			emitted++
			stop = q.Limit > 0 && emitted >= q.Limit
			return !stop
		})
		if err != nil {
			return 0, err
		}
		if n <= next {
			break
		}
		looked += int(n - next)
		next = n
	}
	return 0, emitErr
}

// SeqAtTime finds, by binary search over ingest times, the first seq ingested at or after t.
func SeqAtTime(st Reader, t time.Time) uint64 {
	lo, hi := st.FirstSeq(), st.LastSeq()
	if lo == 0 {
		return 0
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		ev, err := st.Get(mid)
		if err != nil {
			return st.FirstSeq() // a gap should not happen; fall back to a full scan
		}
		if ev.IngestTime.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// Last returns the last n events q selects (its limit aside), oldest first,
// reading backwards in chunks.
func Last(st Reader, q *Query, n int) ([]*event.Event, error) {
	if err := WaitReadable(context.Background(), st); err != nil {
		return nil, err
	}
	first, hi := st.FirstSeq(), st.LastSeq()
	var out []*event.Event
	for first > 0 && hi >= first && len(out) < n {
		lo := first
		if hi-first >= scanStep {
			lo = hi - scanStep + 1
		}
		var chunk []*event.Event
		_, err := st.Scan(lo, int(hi-lo+1), event.ByHead(q.Keep), func(ev *event.Event) bool {
			if q.Match(ev) {
				chunk = append(chunk, ev)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		out = append(chunk, out...)
		hi = lo - 1
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}
