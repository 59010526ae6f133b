// Package backoff is the one retry schedule of the router: exponential waits with jitter, and
// a sleep that ends with its context. The engine (guest retries, broker refusals, dead-letter
// publishing, outage recovery) and the broker layer (reconnects) all use it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Exponential is the wait before try attempt+1 (attempt >= 1): base, doubled for every earlier
// attempt while below limit, and capped at limit. With limit <= 0 it stays base.
func Exponential(base, limit time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	if limit > 0 && d > limit {
		d = limit
	}
	return max(d, 0)
}

// HalfJitter is uniform in [d/2, d]: many retriers do not retry in step, and none retries much
// sooner than asked.
func HalfJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// FullJitter is uniform in [0, d]: reconnecting clients spread over the whole interval.
func FullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// Sleep waits d or until ctx ends, and reports whether ctx is still live.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
