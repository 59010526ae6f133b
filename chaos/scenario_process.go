package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/store"
)

// killScenario kills the router with SIGKILL at random moments, start-up and recovery
// included, and restarts it at once.
func killScenario() *scenario {
	return &scenario{
		name:  "kill",
		about: "the router killed with SIGKILL at random moments (seeded) and restarted",
		prepare: func(w *world) error {
			w.sinks = []sinkSpec{{name: "out"}}
			return nil
		},
		faults: func(ctx context.Context, w *world, rng *rand.Rand) error {
			w.res.FaultKind = "SIGKILLs, each followed by a restart"
			n, err := every(ctx, rng, 300*time.Millisecond, 3*time.Second, func() error {
				if err := w.router.kill(); err != nil {
					return err
				}
				return w.router.start()
			})
			w.res.Faults = n
			return err
		},
		afterStop: checkLogOnce,
	}
}

// checkLogOnce opens the stopped router's log and checks that it holds each confirmed id at
// most once: a redelivery after a crash must not make a second record.
func checkLogOnce(w *world) {
	st, err := store.Open(store.Options{Path: w.storePath, ReadOnly: true})
	if err != nil {
		w.res.violate("opening the event log read-only: %v", err)
		return
	}
	defer st.Close()
	seen := map[string]int{}
	if _, err := st.Scan(1, 0, nil, func(ev *event.Event) bool {
		seen[ev.Props.MessageID]++
		return true
	}); err != nil {
		w.res.violate("scanning the event log: %v", err)
		return
	}
	var twice []string
	for id, n := range seen {
		if n > 1 {
			twice = append(twice, id)
		}
	}
	w.res.note("the event log holds %d events, %d of them recorded more than once", len(seen), len(twice))
	if len(twice) > 0 {
		w.res.violate("%d messages recorded more than once in the log, e.g. %s", len(twice), strings.Join(twice[:min(5, len(twice))], ", "))
	}
}

// connCloseScenario has the broker close the router's connections and the harness's own,
// repeatedly, while traffic flows.
func connCloseScenario() *scenario {
	return &scenario{
		name:  "connclose",
		about: "broker connections closed by force, repeatedly (rabbitmqctl close_connection)",
		prepare: func(w *world) error {
			w.sinks = []sinkSpec{{name: "out"}}
			return nil
		},
		faults: func(ctx context.Context, w *world, rng *rand.Rand) error {
			names := append(w.routerConnNames(w.main), w.connName("pub"), w.connName("check"))
			w.res.FaultKind = "rounds of closing the router's and the harness's connections by name"
			if w.o.closeAll {
				w.res.FaultKind = "rounds of rabbitmqctl close_all_connections"
			}
			closed := 0
			n, err := every(ctx, rng, time.Second, 4*time.Second, func() error {
				if w.o.closeAll {
					_, err := rabbitmqctl(context.WithoutCancel(ctx), "close_all_connections", "chaos")
					return err
				}
				c, err := closeNamed(context.WithoutCancel(ctx), names...)
				closed += c
				return err
			})
			w.res.Faults = n
			if !w.o.closeAll {
				w.res.note("%d connections closed in %d rounds", closed, n)
			}
			return err
		},
		check: func(w *world) {
			v, ok := metric(w.router.admin, "router_broker_reconnects_total", "cluster", w.main)
			if !ok {
				w.res.violate("router_broker_reconnects_total{cluster=%q} is not exported: the faults cannot be shown to have hit", w.main)
				return
			}
			w.res.note("router_broker_reconnects_total = %v", v)
			// Two connections per cluster at start-up: a third means a reconnect.
			if w.res.Faults > 0 && v < 3 {
				w.res.violate("the router never reconnected (router_broker_reconnects_total = %v): the faults proved nothing", v)
			}
		},
	}
}

// brokerRestartScenario stops and starts the broker application. Every client of the broker
// loses its connections, so it runs only when enabled.
func brokerRestartScenario() *scenario {
	return &scenario{
		name:       "brokerrestart",
		about:      "the broker application stopped and started (rabbitmqctl stop_app/start_app)",
		disruptive: true,
		prepare: func(w *world) error {
			w.sinks = []sinkSpec{{name: "out"}}
			return nil
		},
		faults: func(ctx context.Context, w *world, rng *rand.Rand) error {
			w.res.FaultKind = "broker application restarts"
			var down time.Duration
			n, err := every(ctx, rng, 3*time.Second, 8*time.Second, func() error {
				// Once stopped, the broker is always started again, whatever ctx says.
				bg := context.WithoutCancel(ctx)
				if _, err := rabbitmqctl(bg, "stop_app"); err != nil {
					return err
				}
				start := time.Now()
				sleepCtx(bg, time.Second+time.Duration(rng.Int64N(int64(3*time.Second))))
				if _, err := rabbitmqctl(bg, "start_app"); err != nil {
					return err
				}
				_, err := rabbitmqctl(bg, "await_startup")
				down += time.Since(start)
				return err
			})
			w.res.Faults = n
			w.res.note("broker application down %v in all", Duration(down))
			return err
		},
	}
}

// metric reads one sample of /metrics whose label key has value val.
func metric(admin, name, key, val string) (float64, bool) {
	code, body, err := httpGet(admin, "/metrics")
	if err != nil || code != 200 {
		return 0, false
	}
	want := fmt.Sprintf(`%s="%s"`, key, val)
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, want) {
			continue
		}
		var v float64
		i := strings.LastIndexByte(line, ' ')
		if _, err := fmt.Sscanf(line[i+1:], "%g", &v); err == nil {
			return v, true
		}
	}
	return 0, false
}
