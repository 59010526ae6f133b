package e2e

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/testutil/inproc"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// benchWorld is a router configuration with one source, two targets and the Go example guest
// threshold as a filter, which a benchmark rewrites and reloads.
type benchWorld struct {
	dir, path, wasm string
	srcX            string
	base            string
	builds          [][]byte // two builds of the guest: the same code, different files
}

func newBenchWorld(b *testing.B) *benchWorld {
	b.Helper()
	w := &benchWorld{dir: b.TempDir()}
	w.path = filepath.Join(w.dir, "router.hcl")
	srcX, srcQ := sourceNames(b)
	w.srcX = srcX
	w.base = clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ)
	for _, name := range []string{"t1", "t2"} {
		w.base += targetBlock(name, "main", rabbit.Unique("e2e.rbench."+name))
	}
	wasm, err := os.ReadFile(wasmRepoFile(b, "examples/wasm/threshold/threshold.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	// A custom section changes the file (its hash, so the reload loads it again) and not
	// the code: as a rebuild with other debug information.
	rebuilt := slices.Clone(wasm)
	rebuilt = append(rebuilt, 0, 9, 7, 'r', 'e', 'b', 'u', 'i', 'l', 't', 1)
	w.builds = [][]byte{wasm, rebuilt}
	w.wasm = filepath.Join(w.dir, "threshold.wasm")
	w.writeGuest(b, 0)
	return w
}

func (w *benchWorld) writeGuest(b *testing.B, build int) {
	b.Helper()
	if err := os.WriteFile(w.wasm, w.builds[build], 0o600); err != nil {
		b.Fatal(err)
	}
}

// write puts the configuration with route "orders" matching match.
func (w *benchWorld) write(b *testing.B, match string) {
	b.Helper()
	src := w.base + "module \"big\" {\n  path   = " + hclString(w.wasm) + "\n  config = { field = \"amount\", min = \"100\" }\n}\n" +
		"route \"all\" {\n  source  = \"in\"\n  targets = [\"t1\"]\n}\n" +
		"route \"orders\" {\n  source  = \"in\"\n  match   = [" + hclString(match) + "]\n  filters = [\"big\"]\n  targets = [\"t2\"]\n}\n"
	if err := os.WriteFile(w.path, []byte(src), 0o600); err != nil {
		b.Fatal(err)
	}
}

func (w *benchWorld) start(b *testing.B) *inproc.Router {
	b.Helper()
	r := inproc.Start(b, inproc.LoadFile(b, w.path), inproc.Options{LogLevel: slog.LevelInfo})
	waitReady(b, r.Admin, 30*time.Second)
	return r
}

func reloadOnce(b *testing.B, r *inproc.Router) app.ReloadAnswer {
	b.Helper()
	ans := r.Reloader.Do(context.Background(), app.ReloadRequest{}, "bench")
	if !ans.Applied {
		b.Fatalf("reload not applied: %+v", ans)
	}
	return ans
}

// BenchmarkReload measures the time from a reload request to the new generation in force
// (Reloader.Do returns once it is): a route change (its match), and a changed Go guest (a
// .wasm file of new content, compiled and instantiated). The guest alternates between two
// builds, warmed up before the timer starts, so each reload takes its compiled code from the
// compilation cache, as a rebuild of a file the router has seen does.
//
//	go test -run '^$' -bench 'BenchmarkReload$' -benchtime 20x -count 6 ./e2e/
func BenchmarkReload(b *testing.B) {
	rabbit.SkipIfShort(b)
	b.Run("route_change", func(b *testing.B) {
		w := newBenchWorld(b)
		matches := []string{"order.*", "order.#"}
		w.write(b, matches[0])
		r := w.start(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			w.write(b, matches[(i+1)%2])
			b.StartTimer()
			reloadOnce(b, r)
		}
	})
	b.Run("go_guest_warm_cache", func(b *testing.B) {
		w := newBenchWorld(b)
		w.write(b, "order.*")
		r := w.start(b)
		for i := 1; i <= 2; i++ { // both builds compiled once: the cache is warm
			w.writeGuest(b, i%2)
			reloadOnce(b, r)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			w.writeGuest(b, (i+1)%2)
			b.StartTimer()
			reloadOnce(b, r)
		}
	})
}

// BenchmarkReloadThroughput drains a full source queue (reloadDipEvents persistent events,
// all routed to one target) through the router, once without reloads and once with a reload
// every second (a route's match alternating), per iteration: the two sides alternate, in
// ABBA order, so that the machine's noise and drift spread over both. It reports each side's events/s and their ratio.
//
//	go test -run '^$' -bench BenchmarkReloadThroughput -benchtime 4x ./e2e/
func BenchmarkReloadThroughput(b *testing.B) {
	rabbit.SkipIfShort(b)
	var steady, reloading roundResult
	var ratios []float64
	for i := 0; i < b.N; i++ {
		// The side that goes first alternates too (steady, reloading, reloading, steady, ...):
		// whatever drifts from round to round (the broker's message store, this process's
		// heap) then weighs on both sides alike rather than always on the second.
		var s, r roundResult
		if i%2 == 0 {
			s = drainRound(b, false, i+1)
			r = drainRound(b, true, i+1)
		} else {
			r = drainRound(b, true, i+1)
			s = drainRound(b, false, i+1)
		}
		steady.add(s)
		reloading.add(r)
		ratios = append(ratios, s.elapsed.Seconds()/r.elapsed.Seconds())
		b.Logf("round %d: %.0f events/s steady, %.0f with %d reloads (%.2fx); CPU %.0f / %.0f us per event", i+1,
			float64(reloadDipEvents)/s.elapsed.Seconds(), float64(reloadDipEvents)/r.elapsed.Seconds(), r.reloads,
			ratios[i], s.cpuPerEvent(), r.cpuPerEvent())
	}
	events := float64(reloadDipEvents * b.N)
	b.ReportMetric(events/steady.elapsed.Seconds(), "steady-events/s")
	b.ReportMetric(events/reloading.elapsed.Seconds(), "reloading-events/s")
	b.ReportMetric(steady.elapsed.Seconds()/reloading.elapsed.Seconds(), "ratio")
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "median-round-ratio")
	b.ReportMetric(float64(reloading.reloads)/float64(b.N), "reloads/op")
	// The CPU this process (router and benchmark alike) spent per event on each side: on a
	// busy machine a round's rate swings with what else runs, its CPU much less, so this is
	// where a reload's own cost shows.
	b.ReportMetric(steady.cpuPerEvent(), "steady-cpu-us/event")
	b.ReportMetric(reloading.cpuPerEvent(), "reloading-cpu-us/event")
}

// roundResult is what drainRound measured (or the sum over rounds).
type roundResult struct {
	elapsed, cpu time.Duration
	events       int
	reloads      int
}

func (r *roundResult) add(o roundResult) {
	r.elapsed += o.elapsed
	r.cpu += o.cpu
	r.events += o.events
	r.reloads += o.reloads
}

func (r roundResult) cpuPerEvent() float64 {
	return float64(r.cpu.Microseconds()) / float64(r.events)
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reloadDipEvents is how many events a throughput round drains: at 10,000 events/s the
// default makes a round of two seconds and one or two reloads; -reload-dip-events 120000
// makes the reloading rounds of a few runs add up to a minute of reloads.
var reloadDipEvents = 20000

// reloadDipProfiles, when set, is a directory where each BenchmarkReloadThroughput round writes
// the CPU profile of its drain (steady-N.pprof, reloading-N.pprof), so that the two sides can be
// compared (go tool pprof -diff_base).
var reloadDipProfiles string

func init() {
	flag.IntVar(&reloadDipEvents, "reload-dip-events", reloadDipEvents, "events a BenchmarkReloadThroughput round drains")
	flag.StringVar(&reloadDipProfiles, "reload-dip-profiles", "", "directory for a CPU profile per BenchmarkReloadThroughput round")
}

// profileRound starts the CPU profile of a round, if asked for; the returned func ends it.
func profileRound(b *testing.B, name string) func() {
	b.Helper()
	if reloadDipProfiles == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(reloadDipProfiles, name+".pprof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err) // -cpuprofile and this flag exclude each other
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// drainRound fills a source queue, starts a router on it and times until the target has every
// event; with reloading, a reload every second meanwhile. round numbers its profile.
func drainRound(b *testing.B, reloading bool, round int) roundResult {
	b.StopTimer()
	defer b.StartTimer()
	dir := b.TempDir()
	path := filepath.Join(dir, "router.hcl")
	srcX, srcQ := sourceNames(b)
	x := rabbit.Unique("e2e.dip")
	q := targetQueue(b, x)
	base := clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ) + targetBlock("t1", "main", x) +
		targetBlock("t2", "main", rabbit.Unique("e2e.dip.other"))
	write := func(match string) {
		src := base + "route \"all\" {\n  source  = \"in\"\n  targets = [\"t1\"]\n}\n" +
			"route \"other\" {\n  source  = \"in\"\n  match   = [" + hclString(match) + "]\n  targets = [\"t2\"]\n}\n"
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	write("none.*")
	// The queue exists before the router starts (as it would declare it), so that it starts on
	// a full queue: full load from the first second.
	withChannel(b, func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(srcX, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			return err
		}
		if _, err := ch.QueueDeclare(srcQ, true, false, false, false, nil); err != nil {
			return err
		}
		return ch.QueueBind(srcQ, "#", srcX, false, nil)
	})
	msgs, ids := numbered(fmt.Sprintf("dip%d", time.Now().UnixNano()), "k", reloadDipEvents)
	mustPublish(b, srcX, msgs...)
	c := collect(b, q)
	side := "steady"
	if reloading {
		side = "reloading"
	}
	endProfile := profileRound(b, fmt.Sprintf("%s-%d-of-%d", side, round, b.N))
	b.StartTimer()
	cpu0 := processCPU(b)
	start := time.Now()
	r := inproc.Start(b, inproc.LoadFile(b, path), inproc.Options{LogLevel: slog.LevelInfo})
	stop := make(chan struct{})
	reloaded := make(chan int, 1)
	var took, longest float64 // ms the reloads took, in all and the longest (read after reloaded)
	go func() {
		n := 0
		defer func() { reloaded <- n }()
		if !reloading {
			return
		}
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
				n++
				took += ans.Millis
				longest = max(longest, ans.Millis)
			}
		}
	}()
	c.waitIDs(b, "t1", ids, 10*time.Minute)
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	endProfile()
	close(stop)
	n := <-reloaded
	if n > 0 {
		b.Logf("%d reloads: %.1f ms on average, the longest %.1f ms", n, took/float64(n), longest)
	}
	if err := r.Stop(); err != nil {
		b.Fatal(err)
	}
	c.stop()
	c.forget()
	return roundResult{elapsed: elapsed, cpu: cpu, events: reloadDipEvents, reloads: n}
}
