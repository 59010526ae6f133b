package streamlog

import (
	"fmt"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/store"
)

// The router that claims first gets every pair; it hands pairs over until each router holds
// its share, and the position goes with each pair.
func TestPairsSpreadOverTheRouters(t *testing.T) {
	rabbit.SkipIfShort(t)
	stream := rabbit.Unique("streamlog.balance")
	var cursors []string
	for i := range 4 {
		cursors = append(cursors, fmt.Sprintf("%sr/t%d", store.DeliveryCursorPrefix, i))
	}
	for _, q := range []string{stream, ControlStream(stream)} {
		rabbit.DeleteQueueAtCleanup(t, q)
	}
	for _, c := range cursors {
		rabbit.DeleteQueueAtCleanup(t, LeaseQueue(stream, c))
	}
	a := openStore(t, stream, "router-a")
	for _, c := range cursors {
		l, err := a.Claim(c)
		if err != nil {
			t.Fatal(err)
		}
		waitGranted(t, l, 30*time.Second)
		a.SetCursor(c, 7)
	}
	b := openStore(t, stream, "router-b")
	held := func(s *Store) (n int) {
		for _, c := range cursors {
			// As the engine does: a pair whose lease was lost is claimed again.
			l, err := s.Claim(c)
			if err == nil && isClosedCh(l.Granted()) && !isClosedCh(l.Lost()) {
				n++
			}
		}
		return n
	}
	eventuallyWithin(t, 4*balanceEvery+30*time.Second, "two pairs on each router", func() bool {
		na, nb := held(a), held(b)
		return na == 2 && nb == 2
	})
	for _, c := range cursors {
		b.mu.Lock()
		l := b.leases[c]
		b.mu.Unlock()
		if isClosedCh(l.Granted()) && !isClosedCh(l.Lost()) {
			if pos, _ := b.Cursor(c); pos != 7 {
				t.Errorf("%s moved to router-b at %d, want the position router-a left, 7", c, pos)
			}
		}
	}
}
