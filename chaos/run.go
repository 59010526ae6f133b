package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// scenario is one kind of trouble. prepare shapes the world before the router starts (it may
// return errSkip); faults runs while the traffic flows, until ctx ends, and leaves everything
// healed when it returns; check adds scenario-specific verdicts after the drain, afterStop
// once the router has stopped.
type scenario struct {
	name, about string
	disruptive  bool // disturbs every user of the broker
	prepare     func(w *world) error
	faults      func(ctx context.Context, w *world, rng *rand.Rand) error
	check       func(w *world)
	afterStop   func(w *world) // once the router stopped gracefully
}

// errSkip is returned by prepare, wrapped with the reason, when a scenario cannot run here.
var errSkip = errors.New("skipped")

// scenarios lists every scenario in the order they run.
func scenarios() []*scenario {
	return []*scenario{killScenario(), connCloseScenario(), brokerRestartScenario(), targetScenario(),
		diskScenario(), slowScenario(), poisonScenario(), routersScenario(), reloadScenario()}
}

// runAll runs the selected scenarios one after the other.
func runAll(ctx context.Context, o *options, progress io.Writer) []*Result {
	var results []*Result
	for i, sc := range scenarios() {
		if !o.selected(sc.name) {
			continue
		}
		var r *Result
		if sc.disruptive && !o.brokerRestart {
			r = &Result{Scenario: sc.name, About: sc.about, Skipped: "disturbs every user of the broker; enable with -broker-restart"}
		} else {
			r = runScenario(ctx, o, sc, rand.New(rand.NewPCG(uint64(o.seed), uint64(i))))
		}
		if progress != nil {
			r.writeText(progress)
		}
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	return results
}

// runScenario sets up a world, runs traffic and faults for the scenario's duration, heals,
// drains and accounts.
func runScenario(ctx context.Context, o *options, sc *scenario, rng *rand.Rand) *Result {
	w, err := newWorld(o, sc.name)
	if err != nil {
		return &Result{Scenario: sc.name, About: sc.about, Error: err.Error()}
	}
	r := w.res
	r.About, r.Rate = sc.about, o.rate
	defer w.teardown()
	if sc.prepare != nil {
		if err := sc.prepare(w); err != nil {
			if errors.Is(err, errSkip) {
				r.Skipped = err.Error()
			} else {
				r.Error = "prepare: " + err.Error()
			}
			return r
		}
	}
	if err := w.setup(); err != nil {
		r.Error = "setup: " + err.Error()
		return r
	}
	w.startTraffic()
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, o.duration)
	ferr := sc.faults(fctx, w, rng)
	<-fctx.Done()
	cancel()
	r.Traffic = Duration(time.Since(start))
	w.pub.end()
	if ferr != nil {
		r.Error = "faults: " + ferr.Error()
	}
	for _, rp := range w.routers {
		if !rp.running() {
			// The router ended by itself (a kill is always followed by a restart): bring it
			// back to drain what it holds, and record the crash below.
			if err := rp.start(); err != nil {
				r.Error = err.Error()
				return r
			}
		}
	}
	for _, rp := range w.routers {
		if err := rp.waitReady(60 * time.Second); err != nil {
			r.violate("%s not ready after the faults healed: %v", rp.name, err)
		}
	}
	drainStart := time.Now()
	if err := w.drain(ctx); err != nil {
		r.violate("%v", err)
	}
	r.Drain = Duration(time.Since(drainStart))
	w.account()
	if n := w.pub.connects(); n > 1 {
		r.note("the publisher connected %d times", n)
	}
	if sc.check != nil {
		sc.check(w)
	}
	stoppedAll := true
	for _, rp := range w.routers {
		if err := rp.stop(); err != nil {
			r.violate("%s graceful stop: %v", rp.name, err)
			stoppedAll = false
		}
	}
	if stoppedAll && sc.afterStop != nil {
		sc.afterStop(w)
	}
	for _, rp := range w.routers {
		for _, c := range rp.crashes {
			r.violate("%s crashed: %s", rp.name, c)
		}
	}
	if !r.Passed() {
		for _, rp := range w.routers {
			r.note("%s log kept: %s (last lines:\n%s)", rp.name, rp.logPath, rp.tail(8))
		}
	}
	return r
}

func (o *options) selected(name string) bool {
	if len(o.scenarios) == 0 {
		return true
	}
	for _, s := range o.scenarios {
		if s == name || s == "all" {
			return true
		}
	}
	return false
}

// every runs fn at random intervals in [lo, hi) until ctx ends, counting the runs.
func every(ctx context.Context, rng *rand.Rand, lo, hi time.Duration, fn func() error) (int, error) {
	n := 0
	for {
		if !sleepCtx(ctx, lo+time.Duration(rng.Int64N(int64(hi-lo)))) {
			return n, nil
		}
		if err := fn(); err != nil {
			return n, fmt.Errorf("fault %d: %w", n+1, err)
		}
		n++
	}
}
