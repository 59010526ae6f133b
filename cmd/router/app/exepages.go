package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/exepages"
)

// exePagesEvery is how often the executable's pages are let go once the router is ready:
// code that ran once since (a reload's parsing, an admin request) leaves the resident set
// again. What the router keeps running is mapped again within moments, at the cost of a few
// hundred minor faults (well under a millisecond of CPU). Every 10 s rather than every minute
// keeps less of what ran once resident (BENCHMARKS.md, "Memory").
const exePagesEvery = 10 * time.Second

// releaseExePages lets go of the executable's pages (see package exepages) at once, as the
// engine starts (the configuration's parsing and every package's initialisation behind it,
// before the sources fill the heap: the resident set peaked there); once ready() first reports
// true, the connecting behind it, it drops them from the page cache as well (exepages.Evict),
// so that from then on only what the router runs comes back; then it lets go of them every
// exePagesEvery until ctx ends.
func releaseExePages(ctx context.Context, ready func() bool, log *slog.Logger) {
	if _, err := exepages.Release(); err != nil {
		log.Debug("releasing the executable's pages", "error", err)
		return
	}
	wait := time.NewTicker(250 * time.Millisecond)
	defer wait.Stop()
	for !ready() {
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
		}
	}
	// Start-up is over: drop its pages from the page cache too, so that what Release keeps
	// resident from now on is what runs (package exepages, Evict).
	if _, err := exepages.Evict(); err != nil {
		log.Debug("dropping the executable's pages from the page cache", "error", err)
	}
	every := time.NewTicker(exePagesEvery)
	defer every.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-every.C:
		}
		if _, err := exepages.Release(); err != nil {
			log.Debug("releasing the executable's pages", "error", err)
			return
		}
	}
}
