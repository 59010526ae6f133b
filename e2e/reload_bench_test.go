package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// BenchmarkReload measures the time from a reload request to the new generation in force:
// a route change (its match), and a rebuilt guest (a .wasm file of new content, compiled and
// instantiated; alternating two builds, so the second and later loads of each come from the
// compilation cache, as a rebuild of a file seen before does).
//
//	go test -run '^$' -bench BenchmarkReload -benchtime 20x ./e2e/
func BenchmarkReload(b *testing.B) {
	rabbit.SkipIfShort(b)
	for _, bc := range []struct {
		name   string
		module bool
	}{{"route_change", false}, {"rebuilt_guest", true}} {
		b.Run(bc.name, func(b *testing.B) {
			w := newReloadWorldB(b)
			routes := func(match string) string {
				return "route \"all\" {\n  source  = \"in\"\n  targets = [\"t1\"]\n}\n" +
					"route \"orders\" {\n  source  = \"in\"\n  match   = [" + hclString(match) + "]\n  filters = [\"orders_only\"]\n  targets = [\"t2\"]\n}\n"
			}
			w.writeB(b, routes("order.*"))
			r := startRouter(b, w.path)
			builds := [][]byte{w.originalWasm, append(append([]byte{}, w.originalWasm...), 0, 8, 7, 'r', 'e', 'b', 'u', 'i', 'l', 't')}
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if bc.module {
					if err := os.WriteFile(w.wasm, builds[(i+1)%2], 0o600); err != nil {
						b.Fatal(err)
					}
				} else {
					w.writeB(b, routes([]string{"order.#", "order.*"}[i%2]))
				}
				b.StartTimer()
				start := time.Now()
				ans := r.Reloader.Do(context.Background(), app.ReloadRequest{}, "bench")
				total += time.Since(start)
				if !ans.Applied {
					b.Fatalf("reload %d not applied: %+v", i, ans)
				}
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/reload")
		})
	}
}

// newReloadWorldB is newReloadWorld for a benchmark (no collectors: nothing is published).
func newReloadWorldB(b *testing.B) *reloadWorld {
	b.Helper()
	w := &reloadWorld{dir: b.TempDir(), queues: map[string]string{}, collectors: map[string]*collector{}}
	w.path = w.dir + "/router.hcl"
	srcX, srcQ := sourceNames(b)
	w.srcX = srcX
	w.base = clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ)
	for _, name := range []string{"t1", "t2", "t3"} {
		x := rabbit.Unique("e2e.reload." + name)
		w.queues[name] = targetQueue(b, x)
		w.base += targetBlock(name, "main", x)
	}
	wasm, err := os.ReadFile(wasmRepoFile(b, "examples/wasm/keyfilter/keyfilter.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	w.originalWasm = wasm
	w.wasm = w.dir + "/keyfilter.wasm"
	if err := os.WriteFile(w.wasm, wasm, 0o600); err != nil {
		b.Fatal(err)
	}
	return w
}

func (w *reloadWorld) writeB(b *testing.B, routes string) {
	b.Helper()
	src := w.base + "module \"orders_only\" {\n  path   = " + hclString(w.wasm) + "\n  config = { prefix = \"order.\" }\n}\n" + routes
	if err := os.WriteFile(w.path, []byte(src), 0o600); err != nil {
		b.Fatal(err)
	}
}

// TestBenchReloadThroughputDip compares the router's throughput under full load with and
// without a reload every second: the source queue is filled first, then the router drains it
// to a target while (in the reload rounds) a route's match alternates every second. Rounds
// alternate to spread the machine's noise over both sides. It runs only with
// WASMROUTER_BENCH=1, without -race for figures worth reporting:
//
//	WASMROUTER_BENCH=1 go test -count=1 -v -run TestBenchReloadThroughputDip -timeout 30m ./e2e/
func TestBenchReloadThroughputDip(t *testing.T) {
	if os.Getenv("WASMROUTER_BENCH") != "1" {
		t.Skip("benchmark: set WASMROUTER_BENCH=1 to run")
	}
	rabbit.SkipIfShort(t)
	const n = 60000
	const rounds = 3
	rates := map[bool][]float64{}
	for round := 0; round < 2*rounds; round++ {
		reloading := round%2 == 1
		w := &reloadWorld{dir: t.TempDir()}
		w.path = w.dir + "/router.hcl"
		srcX, srcQ := sourceNames(t)
		x := rabbit.Unique("e2e.dip")
		q := targetQueue(t, x)
		w.base = clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ) + targetBlock("t1", "main", x) +
			targetBlock("t2", "main", rabbit.Unique("e2e.dip.other"))
		write := func(match string) {
			src := w.base + "route \"all\" {\n  source  = \"in\"\n  targets = [\"t1\"]\n}\n" +
				"route \"other\" {\n  source  = \"in\"\n  match   = [" + hclString(match) + "]\n  targets = [\"t2\"]\n}\n"
			if err := os.WriteFile(w.path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		write("none.*")
		// The queue exists before the router starts (as it would declare it), so that it
		// starts on a full queue: full load from the first second.
		withChannel(t, func(ch *amqp.Channel) error {
			if err := ch.ExchangeDeclare(srcX, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
				return err
			}
			if _, err := ch.QueueDeclare(srcQ, true, false, false, false, nil); err != nil {
				return err
			}
			return ch.QueueBind(srcQ, "#", srcX, false, nil)
		})
		msgs, ids := numbered(fmt.Sprintf("dip%d", round), "k", n)
		mustPublish(t, srcX, msgs...)
		c := collect(t, q)
		r := startRouterUnready(t, w.path)
		start := time.Now()
		stop := make(chan struct{})
		reloads := 0
		if reloading {
			go func() {
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					write([]string{"nothing.*", "none.*"}[i%2])
					if ans := r.Reloader.Do(context.Background(), app.ReloadRequest{}, "bench"); ans.Applied {
						reloads++
					}
				}
			}()
		}
		c.waitIDs(t, "t1", ids, 10*time.Minute)
		elapsed := time.Since(start)
		close(stop)
		rate := float64(n) / elapsed.Seconds()
		rates[reloading] = append(rates[reloading], rate)
		t.Logf("round %d, reloading %v: %d events in %v: %.0f events/s (%d reloads)", round, reloading, n, elapsed.Round(time.Millisecond), rate, reloads)
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	without, with := mean(rates[false]), mean(rates[true])
	t.Logf("throughput without reloads %.0f events/s, with a reload every second %.0f events/s: %+.1f%%", without, with, 100*(with-without)/without)
}
