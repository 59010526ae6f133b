package streamlog

import (
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

// The engine recognises the log on a stream as shared: it claims each pair before delivering.
var _ router.PairClaimer = (*Store)(nil)

// A new pair (its token carries no position) is not among the cursors; ResetCursor writes the
// position into the token before it returns, so that the next holder starts there too.
func TestNewPairPositionIsWrittenBeforeDelivery(t *testing.T) {
	stream, cursor, conn, first := openFirstRouter(t, "streamlog.newpair")
	seqs, _ := appendAll(t, first.Log, store.Window{}, sampleEvent(1), sampleEvent(2), sampleEvent(3))
	l, err := first.Claim(cursor)
	if err != nil {
		t.Fatal(err)
	}
	waitGranted(t, l, 30*time.Second) // the only router
	cursors, err := first.Cursors()
	if err != nil {
		t.Fatal(err)
	}
	if pos, ok := cursors[cursor]; ok {
		t.Fatalf("a new pair is listed at %d; want it absent, so that it starts at the end", pos)
	}
	if err := first.ResetCursor(cursor, seqs[2]); err != nil {
		t.Fatal(err)
	}
	if cursors, _ = first.Cursors(); cursors[cursor] != seqs[2] {
		t.Fatalf("after ResetCursor the cursors are %v, want %s at %d", cursors, cursor, seqs[2])
	}

	second := openStore(t, stream, "router-b")
	l2, err := second.Claim(cursor)
	if err != nil {
		t.Fatal(err)
	}
	conn.kill() // no flush, no goodbye: the position must already be in the token
	select {
	case <-l2.Granted():
	case <-time.After(30 * time.Second):
		t.Fatal("the pair was not taken over")
	}
	if next, set := l2.Position(); !set || next != seqs[2]+1 {
		t.Fatalf("the next holder's position is %d (set %v), want %d", next, set, seqs[2]+1)
	}
}

// A pair's first token carries the log's end as the router that wrote it configured the pair:
// a router that claims it later, when more events were logged, and takes it over before
// anyone delivered the pair starts after that first bound, so the events logged in between
// (by the first router, whose sources ran) are not skipped.
func TestANewPairStartsAfterTheFirstRoutersBound(t *testing.T) {
	stream, cursor, conn, first := openFirstRouter(t, "streamlog.firstbound")
	bound := first.LastSeq()
	l, err := first.ClaimAfter(cursor, bound)
	if err != nil {
		t.Fatal(err)
	}
	waitGranted(t, l, 30*time.Second) // the only router
	seqs, _ := appendAll(t, first.Log, store.Window{}, sampleEvent(1), sampleEvent(2), sampleEvent(3))

	second := openStore(t, stream, "router-b")
	if second.LastSeq() < seqs[2] {
		t.Fatalf("the second router opened the log at %d, before the events (%v)", second.LastSeq(), seqs)
	}
	l2, err := second.ClaimAfter(cursor, second.LastSeq())
	if err != nil {
		t.Fatal(err)
	}
	conn.kill() // the first router dies before delivering anything
	select {
	case <-l2.Granted():
	case <-time.After(30 * time.Second):
		t.Fatal("the pair was not taken over")
	}
	if after, ok := l2.StartAfter(); !ok || after != bound {
		t.Fatalf("the next holder starts after %d (bounded %v), want after %d, before the events %v", after, ok, bound, seqs)
	}
}

// Of first tokens written by routers that started together, the one with the lowest bound is
// kept; one without a bound (an older router's) loses to any bound; a set position beats all.
func TestFirstTokensKeepTheLowestBound(t *testing.T) {
	cases := []struct {
		p, q position
		want bool
	}{
		{position{StartAfter: 4, Bounded: true}, position{StartAfter: 9, Bounded: true}, true},
		{position{StartAfter: 9, Bounded: true}, position{StartAfter: 4, Bounded: true}, false},
		{position{StartAfter: 9, Bounded: true}, position{}, true},
		{position{}, position{StartAfter: 9, Bounded: true}, false},
		{position{Next: 1, Set: true}, position{StartAfter: 0, Bounded: true}, true},
		{position{StartAfter: 0, Bounded: true}, position{Next: 1, Set: true}, false},
		{position{Next: 7, Set: true}, position{Next: 6, Set: true}, true},
	}
	for _, c := range cases {
		if got := c.p.after(c.q); got != c.want {
			t.Errorf("%+v kept over %+v: %v, want %v", c.p, c.q, got, c.want)
		}
	}
}

// openFirstRouter opens a new stream as router-a over a connection the test can kill, for
// the pair r/a (whose queues are deleted after the test).
func openFirstRouter(t *testing.T, prefix string) (stream, cursor string, conn *killable, first *Store) {
	t.Helper()
	rabbit.SkipIfShort(t)
	stream = rabbit.Unique(prefix)
	cursor = store.DeliveryCursorPrefix + "r/a"
	for _, q := range []string{stream, ControlStream(stream), LeaseQueue(stream, cursor)} {
		rabbit.DeleteQueueAtCleanup(t, q)
	}
	conn = dialKillable(t)
	first, err := OpenStore(conn.Connection, Options{Native: mainNative(t), Stream: stream}, "router-a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Close() })
	return stream, cursor, conn, first
}
