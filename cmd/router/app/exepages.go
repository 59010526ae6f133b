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
// before the sources fill the heap: the resident set peaked there), again once ready() first
// reports true, the connecting behind it, and then every exePagesEvery until ctx ends.
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
	every := time.NewTicker(exePagesEvery)
	defer every.Stop()
	for {
		if _, err := exepages.Release(); err != nil {
			log.Debug("releasing the executable's pages", "error", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-every.C:
		}
	}
}
