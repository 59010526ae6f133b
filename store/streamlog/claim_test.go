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
	rabbit.SkipIfShort(t)
	stream := rabbit.Unique("streamlog.newpair")
	cursor := store.DeliveryCursorPrefix + "r/a"
	for _, q := range []string{stream, ControlStream(stream), LeaseQueue(stream, cursor)} {
		rabbit.DeleteQueueAtCleanup(t, q)
	}
	conn := dialKillable(t)
	first, err := OpenStore(conn.Connection, Options{Native: mainNative(t), Stream: stream}, "router-a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Close() })
	seqs, _ := appendAll(t, first.Log, store.Window{}, sampleEvent(1), sampleEvent(2), sampleEvent(3))
	l, err := first.Claim(cursor)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Granted():
	case <-time.After(30 * time.Second):
		t.Fatal("the only router was not granted the pair")
	}
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
