package e2e

import (
	"context"
	"os"
	"testing"
	"time"

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
