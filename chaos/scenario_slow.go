package main

import (
	"context"
	"math/rand/v2"
	"time"
)

// slowLatency is the delay the proxy adds to the slow target's traffic, each way.
const slowLatency = 150 * time.Millisecond

// slowScenario puts one target behind a proxy that delays its traffic while another stays
// fast: the fast one's delivery latency must stay low.
func slowScenario() *scenario {
	return &scenario{
		name:  "slow",
		about: "a slow target (a proxy adding latency) next to a fast one",
		prepare: func(w *world) error {
			p, cluster, err := w.proxy("slow")
			if err != nil {
				return err
			}
			p.SetLatency(slowLatency)
			w.sinks = []sinkSpec{{name: "fast"}, {name: "slow", cluster: cluster}}
			return nil
		},
		faults: func(ctx context.Context, w *world, _ *rand.Rand) error {
			w.res.FaultKind = "proxy latency " + slowLatency.String() + " each way on target slow"
			<-ctx.Done()
			return nil
		},
		check: func(w *world) {
			var fast, slow SinkResult
			for _, s := range w.res.Sinks {
				switch s.Name {
				case "fast":
					fast = s
				case "slow":
					slow = s
				}
			}
			w.res.note("fast target latency p50 %v p99 %v, slow target p50 %v p99 %v", fast.LatencyP50, fast.LatencyP99, slow.LatencyP50, slow.LatencyP99)
			// On a machine too busy to keep up, both targets lag by seconds for a reason common to
			// both; the fast one was held back by the slow one only if it did not keep ahead of it
			// by at least the proxy's delay.
			ahead := time.Duration(slow.LatencyP50) - time.Duration(fast.LatencyP50)
			if time.Duration(fast.LatencyP99) > w.o.fastP99 && ahead < slowLatency {
				w.res.violate("the fast target's p99 latency %v exceeds %v: the slow target held it back", fast.LatencyP99, Duration(w.o.fastP99))
			}
			if slow.LatencyP50 < fast.LatencyP50 {
				w.res.violate("the slow target was not slower (p50 %v against %v): the latency proved nothing", slow.LatencyP50, fast.LatencyP50)
			}
		},
	}
}
