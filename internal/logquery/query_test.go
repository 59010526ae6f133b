package logquery

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "router.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func appendAll(t *testing.T, st *store.Store, evs ...*event.Event) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(evs))
	for _, ev := range evs {
		wg.Add(1)
		st.Append(ev, store.FingerprintOf(ev), store.Window{}, func(_ uint64, dup bool, err error) {
			defer wg.Done()
			if err != nil || dup {
				errs <- fmt.Errorf("append: dup %v, %v", dup, err)
			}
		})
		wg.Wait() // one at a time: seqs follow the slice's order
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func ev(key string, headers event.Table, at time.Time) *event.Event {
	e := &event.Event{Source: "in", Exchange: "x", RoutingKey: key, Headers: headers, Body: []byte(key), IngestTime: at.UTC()}
	e.Props.MessageID = key + at.String()
	return e
}

func seqs(t *testing.T, st *store.Store, q Query, budget int) ([]uint64, uint64) {
	t.Helper()
	var out []uint64
	resume, err := List(context.Background(), st, &q, budget, func(e *event.Event) error {
		out = append(out, e.Seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, resume
}

func TestSearchByKeyHeaderTimeAndSeq(t *testing.T) {
	st := openStore(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	appendAll(t, st,
		ev("order.created", event.Table{"tenant": "acme", "n": int32(7)}, t0),
		ev("order.paid", event.Table{"tenant": "other"}, t0.Add(time.Hour)),
		ev("payment.done", event.Table{"tenant": "acme", "flag": true}, t0.Add(2*time.Hour)),
		ev("order.created", nil, t0.Add(3*time.Hour)),
	)
	parse := func(raw string) Query {
		t.Helper()
		v, _ := url.ParseQuery(raw)
		q, err := ParseQuery(v, t0.Add(4*time.Hour))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return q
	}
	for _, tc := range []struct {
		query string
		want  []uint64
	}{
		{"", []uint64{1, 2, 3, 4}},
		{"key=order.*", []uint64{1, 2, 4}},
		{"key=order.created&header=tenant:acme", []uint64{1}},
		{"header=tenant:acme", []uint64{1, 3}},
		{"header=n:7", []uint64{1}},
		{"header=flag:true", []uint64{3}},
		{"header=tenant", []uint64{1, 2, 3}},
		{"header=tenant:acme&header=flag", []uint64{3}},
		{"since=150m", []uint64{3, 4}},
		{"until=" + url.QueryEscape(t0.Add(90*time.Minute).Format(time.RFC3339)), []uint64{1, 2}},
		{"from_seq=2&to_seq=3", []uint64{2, 3}},
		{"limit=2", []uint64{1, 2}},
		{"source=other", nil},
	} {
		got, _ := seqs(t, st, parse(tc.query), 0)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, want %v", tc.query, got, tc.want)
		}
	}
	// A budget cuts a search short and says where to go on from.
	got, resume := seqs(t, st, parse("header=tenant:acme"), 2)
	if !slices.Equal(got, []uint64{1}) || resume != 3 {
		t.Errorf("budget 2: %v resume %d, want [1] resume 3", got, resume)
	}
	q := parse("header=tenant:acme")
	q.From = resume
	if got, resume = seqs(t, st, q, 2); !slices.Equal(got, []uint64{3}) || resume != 0 {
		t.Errorf("continued: %v resume %d, want [3] resume 0", got, resume)
	}
	last, err := Last(st, &Query{Key: "order.*"}, 2)
	if err != nil || len(last) != 2 || last[0].Seq != 2 || last[1].Seq != 4 {
		t.Errorf("Last: %v %v", last, err)
	}
}

func TestParseQueryRefusesMistakes(t *testing.T) {
	for _, raw := range []string{"bogus=1", "key=" + strings.Repeat("a", 300), "from_seq=x", "from_seq=5&to_seq=2", "limit=0", "limit=100000", "header=:v", "since=yesterday"} {
		v, _ := url.ParseQuery(raw)
		if _, err := ParseQuery(v, time.Now()); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%q: %v, want ErrBadQuery", raw, err)
		}
	}
	// Values round-trips.
	v, _ := url.ParseQuery("key=order.*&header=a:b&header=c&from_seq=3&limit=5&source=in")
	q, err := ParseQuery(v, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseQuery(q.Values(), time.Now())
	if err != nil || back.Key != q.Key || len(back.Headers) != 2 || back.From != 3 || back.Limit != 5 || back.Source != "in" {
		t.Errorf("round trip: %+v %v", back, err)
	}
}

func TestHeaderText(t *testing.T) {
	for v, want := range map[any]string{"x": "x", int64(-3): "-3", int8(4): "4", 1.5: "1.5", true: "true", nil: ""} {
		if got := HeaderText(v); got != want {
			t.Errorf("HeaderText(%#v) = %q, want %q", v, got, want)
		}
	}
	if got := HeaderText([]byte("hi")); got != "hi" {
		t.Errorf("bytes: %q", got)
	}
}

// reopening is a log that is not readable yet: its bounds read as empty.
type reopening struct {
	*store.Store
	ready chan struct{}
}

func (r *reopening) FirstSeq() uint64 {
	select {
	case <-r.ready:
		return r.Store.FirstSeq()
	default:
		return 0
	}
}

func (r *reopening) LastSeq() uint64 {
	select {
	case <-r.ready:
		return r.Store.LastSeq()
	default:
		return 0
	}
}

func (r *reopening) WaitReadable(ctx context.Context) error {
	select {
	case <-r.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A query on a log that is reopening waits for it, and says it is catching up rather than
// answer an empty list when it does not become readable in time.
func TestQueryWaitsForAReopeningLog(t *testing.T) {
	st := openStore(t)
	appendAll(t, st, ev("a", nil, time.Now()), ev("b", nil, time.Now()))
	r := &reopening{Store: st, ready: make(chan struct{})}

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // gives up at once: not readable within the wait
	n := 0
	if _, err := List(ctx, r, &Query{}, 0, func(*event.Event) error { n++; return nil }); err == nil || n != 0 {
		t.Fatalf("search on a log that is not readable: %d events, %v; want an error", n, err)
	}

	go close(r.ready)
	n = 0
	if _, err := List(context.Background(), r, &Query{}, 0, func(*event.Event) error { n++; return nil }); err != nil || n != 2 {
		t.Fatalf("search once the log is readable: %d events, %v; want 2", n, err)
	}
}
