package router_test

import (
	"sync"
	"testing"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/router/routertest"
)

// claimLog is the in-memory log shared with imaginary other routers: the test grants and
// takes away the claims on pairs.
type claimLog struct {
	*routertest.Log
	mu     sync.Mutex
	claims map[string][]*fakeClaim // by cursor, in the order they were made
}

type fakeClaim struct {
	granted, lost chan struct{}
}

func (c *fakeClaim) Granted() <-chan struct{} { return c.granted }
func (c *fakeClaim) Lost() <-chan struct{}    { return c.lost }

func (l *claimLog) ClaimPair(cursor string) (event.PairClaim, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &fakeClaim{granted: make(chan struct{}), lost: make(chan struct{})}
	l.claims[cursor] = append(l.claims[cursor], c)
	return c, nil
}

// latest is the newest claim on cursor and how many were made.
func (l *claimLog) latest(cursor string) (*fakeClaim, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := l.claims[cursor]
	if len(cs) == 0 {
		return nil, 0
	}
	return cs[len(cs)-1], len(cs)
}

func isClosedChan(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// On a log several routers share, a pair is delivered only while this router's claim on it is
// granted: nothing before the grant, nothing after the loss, and after a loss the pair is
// claimed again and resumes from its cursor.
func TestASharedPairIsDeliveredOnlyWhileClaimed(t *testing.T) {
	claims := &claimLog{claims: map[string][]*fakeClaim{}}
	r := newRig(t, `
target "a" {
  cluster  = "main"
  exchange = "xa"
}
route "r" {
  source  = "in"
  targets = ["a"]
}
`, rigOptions{claims: claims})
	cursor := router.CursorName("r", "a", "")
	var violations sync.Map
	r.targets["main"].Refuse(func(m *event.Message) error {
		// An observer, not a refusal: was the pair held when this was published?
		if c, _ := claims.latest(cursor); c == nil || !isClosedChan(c.granted) || isClosedChan(c.lost) {
			violations.Store(string(m.Body), true)
		}
		return nil
	})

	r.publish("k", bodies("first", 5)...)
	r.waitFor("the events in the log and the pair claimed", func() bool {
		c, _ := claims.latest(cursor)
		return c != nil && r.log.LastSeq() == 5
	})
	first, _ := claims.latest(cursor)
	close(first.granted)
	if got := r.received("xa", 5); len(got) != 5 {
		t.Fatalf("received %v", got)
	}
	r.waitFor("the cursor after the confirms", func() bool { return r.cursor("r", "a") == 5 })

	close(first.lost) // another router took the pair over
	r.waitFor("the pair claimed again", func() bool { _, n := claims.latest(cursor); return n == 2 })
	r.publish("k", bodies("second", 5)...)
	r.waitFor("the new events in the log", func() bool { return r.log.LastSeq() == 10 })
	second, _ := claims.latest(cursor)
	close(second.granted)
	got := r.received("xa", 10)
	if len(got) != 10 || got[5] != "second000" {
		t.Fatalf("after the second grant the target has %v", got)
	}
	violations.Range(func(k, _ any) bool {
		t.Errorf("%s published while the pair was not held", k)
		return true
	})
}
