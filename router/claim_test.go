package router_test

import (
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

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
	// The log's last seq when the claim was made, and the bound the engine gave.
	loggedAt, startAfter uint64
}

func (c *fakeClaim) Granted() <-chan struct{} { return c.granted }
func (c *fakeClaim) Lost() <-chan struct{}    { return c.lost }

func (l *claimLog) ClaimPair(cursor string, startAfter uint64) (event.PairClaim, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &fakeClaim{granted: make(chan struct{}), lost: make(chan struct{}), loggedAt: l.LastSeq(), startAfter: startAfter}
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

// claimedOnceLogged waits for n events in the log and the pair's claim, and returns the claim.
func (r *rig) claimedOnceLogged(claims *claimLog, cursor string, n uint64) *fakeClaim {
	r.t.Helper()
	r.waitFor("the events in the log and the pair claimed", func() bool {
		c, _ := claims.latest(cursor)
		return c != nil && r.log.LastSeq() == n
	})
	c, _ := claims.latest(cursor)
	return c
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
	r := newRig(t, oneTarget, rigOptions{claims: claims})
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
	first := r.claimedOnceLogged(claims, cursor, 5)
	close(first.granted)
	if got := r.received("xa", 5); len(got) != 5 {
		t.Fatalf("received %v", got)
	}
	r.waitFor("the cursor after the confirms", func() bool { return r.cursor("r", "a") == 5 })

	// The lag this router last reported for the pair (as if it had fallen behind).
	r.metrics.DeliveryLag.WithLabelValues("r", "a").Set(42)
	close(first.lost) // another router took the pair over
	r.waitFor("the pair claimed again", func() bool { _, n := claims.latest(cursor); return n == 2 })
	if got := testutil.ToFloat64(r.metrics.DeliveryLag.WithLabelValues("r", "a")); got != 0 {
		t.Errorf("lag of a pair another router holds: %v, want 0 (the holder reports it)", got)
	}
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

// listingClaimLog is a claimLog that also lists the cursors that exist, as the log on a
// stream does: a pair without a cursor is new and starts at the end of the log.
type listingClaimLog struct {
	*claimLog
	made madeCursors
}

func (l *listingClaimLog) Cursors() (map[string]uint64, error) { return l.made.list(l.Cursor) }

func (l *listingClaimLog) ResetCursor(name string, seq uint64) error {
	l.SetCursor(name, seq)
	l.made.add(name)
	return nil
}

// A new pair on a shared log starts at the end of the log as it was when the router started,
// not when its claim is granted: the events logged while the claim waited (the sources run
// from the start) are delivered.
func TestANewSharedPairDeliversWhatWasLoggedBeforeItsGrant(t *testing.T) {
	claims := &listingClaimLog{claimLog: &claimLog{claims: map[string][]*fakeClaim{}}}
	r := newRig(t, oneTarget, rigOptions{listing: claims})
	cursor := router.CursorName("r", "a", "")
	r.publish("k", bodies("early", 5)...)
	c := r.claimedOnceLogged(claims.claimLog, cursor, 5)
	close(c.granted)
	if got := r.received("xa", 5); len(got) != 5 || got[0] != "early000" {
		t.Fatalf("received %v, want the 5 events logged before the grant", got)
	}
	r.waitFor("the cursor after the confirms", func() bool { return r.cursor("r", "a") == 5 })
}

// On a shared log the broker's retention removes events whatever the pairs delivered: the
// events a pair never delivered are counted as dropped undelivered, and it goes on from the
// oldest event left.
func TestASharedPairCountsWhatRetentionRemovedBeforeDelivery(t *testing.T) {
	claims := &claimLog{claims: map[string][]*fakeClaim{}}
	r := newRig(t, oneTarget, rigOptions{claims: claims})
	cursor := router.CursorName("r", "a", "")
	r.publish("k", bodies("e", 5)...)
	c := r.claimedOnceLogged(claims, cursor, 5)
	r.log.Truncate(3) // removed by retention before the pair delivered them
	close(c.granted)
	if got := r.received("xa", 2); len(got) != 2 || got[0] != "e003" {
		t.Fatalf("received %v, want the two events retention left", got)
	}
	if got := testutil.ToFloat64(r.metrics.StoreLost); got != 3 {
		t.Errorf("router_store_dropped_undelivered_total = %v, want 3", got)
	}
}

// On a shared log the engine claims its pairs before its sources run, bounded by the log's end
// as it configured them: a pair no router delivered yet then cannot start after an event this
// router logged (another router may be granted the pair later, with a later end of its own).
func TestSharedPairsAreClaimedBeforeTheSourcesRun(t *testing.T) {
	claims := &claimLog{claims: map[string][]*fakeClaim{}}
	r := newRig(t, oneTarget, rigOptions{claims: claims})
	cursor := router.CursorName("r", "a", "")
	r.publish("k", bodies("e", 5)...)
	r.claimedOnceLogged(claims, cursor, 5)
	claims.mu.Lock()
	first := claims.claims[cursor][0]
	claims.mu.Unlock()
	if first.loggedAt != 0 || first.startAfter != 0 {
		t.Fatalf("the pair was claimed with %d events logged, bound %d; want 0 and 0 (before the sources ran)", first.loggedAt, first.startAfter)
	}
}
