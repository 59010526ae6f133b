package main

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

// targetScenario troubles two targets at once: one's exchange is deleted and re-created (a
// refusal: its events are retried, then dead-lettered), the other's cluster is cut off
// through a proxy (an outage: its events wait in the log and are never dead-lettered).
func targetScenario() *scenario {
	var proxy *tcpproxy.Proxy
	return &scenario{
		name:  "target",
		about: "a target exchange deleted and re-created; another target's cluster cut through a proxy",
		prepare: func(w *world) error {
			p, cluster, err := w.proxy("cut")
			if err != nil {
				return err
			}
			proxy = p
			w.sinks = []sinkSpec{{name: "exch", allowDead: true}, {name: "cut", cluster: cluster}}
			return nil
		},
		faults: func(ctx context.Context, w *world, rng *rand.Rand) error {
			w.res.FaultKind = "exchange deletions and proxy cuts"
			// Each loop gets its own generator: rand.Rand is not safe for concurrent use.
			rngX := rand.New(rand.NewPCG(rng.Uint64(), 1))
			rngP := rand.New(rand.NewPCG(rng.Uint64(), 2))
			var wg sync.WaitGroup
			var deletions, cuts int
			var errX, errP error
			var deletedFor, cutFor time.Duration
			wg.Go(func() {
				deletions, errX = every(ctx, rngX, 2*time.Second, 5*time.Second, func() error {
					start := time.Now()
					defer func() { deletedFor += time.Since(start) }()
					if err := w.b.do(func(ch *amqp.Channel) error { return ch.ExchangeDelete(w.sinkX["exch"], false, false) }); err != nil {
						return err
					}
					sleepCtx(context.WithoutCancel(ctx), 500*time.Millisecond+time.Duration(rngX.Int64N(int64(1500*time.Millisecond))))
					return w.b.declareBound(w.sinkX["exch"], w.sinkQ["exch"], nil)
				})
			})
			wg.Go(func() {
				cuts, errP = every(ctx, rngP, 2*time.Second, 5*time.Second, func() error {
					start := time.Now()
					proxy.Cut()
					sleepCtx(context.WithoutCancel(ctx), time.Second+time.Duration(rngP.Int64N(int64(3*time.Second))))
					proxy.Restore()
					cutFor += time.Since(start)
					return nil
				})
			})
			wg.Wait()
			w.res.Faults = deletions + cuts
			w.res.note("%d exchange deletions (%v without the exchange), %d cuts (%v cut off)", deletions, Duration(deletedFor), cuts, Duration(cutFor))
			if errX != nil {
				return errX
			}
			return errP
		},
	}
}
