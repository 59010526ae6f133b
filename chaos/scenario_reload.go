package main

import (
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"time"
)

// reloadScenario reloads the configuration (SIGHUP) at random moments, alternating two
// variants that change the delivering route itself (its retry policy) and add or remove a
// second route, with a SIGKILL and restart among the reloads: a reload loses nothing, delivers
// nothing twice beyond what the kills cause, and leaves the source consuming.
func reloadScenario() *scenario {
	variants := []struct{ retry, extra string }{
		{"retry {\n    attempts = 3\n    backoff = \"50ms\"\n    max_backoff = \"500ms\"\n  }", ""},
		{"retry {\n    attempts = 4\n    backoff = \"40ms\"\n    max_backoff = \"400ms\"\n  }",
			"route \"aux\" {\n  source = \"in\"\n  match = [\"chaos.never.matched\"]\n  targets = [\"dlq\"]\n}\n"},
	}
	return &scenario{
		name:  "reload",
		about: "the configuration reloaded by SIGHUP at random moments (seeded), with a SIGKILL and restart among them",
		prepare: func(w *world) error {
			w.sinks = []sinkSpec{{name: "out"}}
			return nil
		},
		faults: func(ctx context.Context, w *world, rng *rand.Rand) error {
			w.res.FaultKind = "SIGHUP reloads between two configurations; one fault in six a SIGKILL and restart"
			variant, kills := 0, 0
			n, err := every(ctx, rng, 150*time.Millisecond, time.Second, func() error {
				if rng.IntN(6) == 0 {
					kills++
					if err := w.router.kill(); err != nil {
						return err
					}
					if err := w.router.start(); err != nil {
						return err
					}
					// A SIGHUP before the process installs its handler would end it: reload
					// only a router that is up.
					return w.router.waitReady(60 * time.Second)
				}
				variant = 1 - variant
				w.retry, w.extra = variants[variant].retry, variants[variant].extra
				tmp := w.router.config + ".tmp"
				if err := os.WriteFile(tmp, []byte(w.config(0, w.router.admin)), 0o600); err != nil {
					return err
				}
				if err := os.Rename(tmp, w.router.config); err != nil {
					return err
				}
				return w.router.hangup()
			})
			w.res.Faults = n
			applied := w.router.logCount("reload applied")
			refused := w.router.logCount("reload refused")
			w.res.note("%d faults: %d SIGKILLs, %d reloads applied, %d refused", n, kills, applied, refused)
			if refused > 0 {
				w.res.violate("%d reloads refused: %s", refused, strings.TrimSpace(w.router.tail(5)))
			}
			return err
		},
		afterStop: checkLogOnce,
	}
}
