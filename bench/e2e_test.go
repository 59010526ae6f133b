package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

func testEnv(tb testing.TB) *Env {
	tb.Helper()
	rabbit.SkipIfShort(tb)
	b, err := Dial(rabbit.URL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	var pid int // 0 when the broker runs elsewhere: broker CPU is then not measured
	if port, err := BrokerPort(rabbit.URL()); err == nil {
		pid, _ = FindBroker(port)
	}
	return &Env{Broker: b, BrokerPID: pid, WorkDir: tb.TempDir(), Poll: 20 * time.Millisecond, QuietWait: time.Second}
}

func checkThroughput(t *testing.T, env *Env, side Side, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := env.Throughput(ctx, side, ThroughputSpec{N: n, Size: 512, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if r.Delivered != n || r.SourceLeft != 0 {
		t.Errorf("delivered %d, left in source %d; want %d and 0", r.Delivered, r.SourceLeft, n)
	}
	if r.InBroker {
		if r.Elapsed <= 0 || r.CPU != 0 || r.Peak != 0 || (env.BrokerPID != 0 && r.BrokerCPU <= 0) {
			t.Errorf("implausible measurements of a side inside the broker: %+v", r)
		}
	} else if r.Elapsed <= 0 || r.CPU <= 0 || r.Peak <= 0 || r.MachineCPU < r.CPU {
		t.Errorf("implausible measurements: %+v", r)
	}
	if entries, err := os.ReadDir(env.WorkDir); err != nil || len(entries) != 0 {
		t.Errorf("the run's directory was not removed: %v %v", entries, err)
	}
}

func checkLatency(t *testing.T, env *Env, side Side) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spec := LatencySpec{Rate: 400, Duration: time.Second, Warmup: 100 * time.Millisecond, Size: 512, Timeout: 30 * time.Second}
	l, err := env.Latency(ctx, side, spec)
	if err != nil {
		t.Fatal(err)
	}
	if l.Sent != 400 || l.Received != l.Sent {
		t.Errorf("sent %d, received %d; want 400 each", l.Sent, l.Received)
	}
	if l.P50 <= 0 || l.P99 < l.P50 || l.Max < l.P99 {
		t.Errorf("implausible percentiles: p50 %v, p99 %v, max %v", l.P50, l.P99, l.Max)
	}
}

func TestBaselineEndToEnd(t *testing.T) {
	env := testEnv(t)
	side := Baseline{Bin: buildBaseline(t), URL: rabbit.URL(), Prefetch: 100}
	t.Run("throughput", func(t *testing.T) { checkThroughput(t, env, side, 1000) })
	t.Run("latency", func(t *testing.T) { checkLatency(t, env, side) })
}

func TestRouterEndToEnd(t *testing.T) {
	env := testEnv(t)
	side := Router{Bin: buildBinary(t, "../cmd/router"), Config: RouterConfig{URL: rabbit.URL(), Prefetch: 100}}
	t.Run("throughput", func(t *testing.T) { checkThroughput(t, env, side, 1000) })
	t.Run("latency", func(t *testing.T) { checkLatency(t, env, side) })
}

// One router, then two sharing one stream on the test broker: every message delivered once,
// the routers' CPU added up, the run's stream and lease queue deleted afterwards.
func TestStreamRoutersEndToEnd(t *testing.T) {
	env := testEnv(t)
	bin := buildBinary(t, "../cmd/router")
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("routers=%d", n), func(t *testing.T) {
			side := StreamRouters{Bin: bin, Label: fmt.Sprintf("router-stream-%d", n), Routers: n,
				Config: RouterConfig{URL: rabbit.URL(), Prefetch: 100, LogLevel: "info"}}
			checkThroughput(t, env, side, 1000)
			if n == 2 {
				t.Run("latency", func(t *testing.T) { checkLatency(t, env, side) })
			}
			out, err := exec.Command("rabbitmqctl", "list_queues", "name", "-q", "--no-table-headers").CombinedOutput()
			if err != nil {
				t.Skipf("rabbitmqctl: %v (cannot check that the stream was deleted)", err)
			}
			if bytes.Contains(out, []byte("bench."+side.Name()+".")) {
				t.Errorf("the run's stream or lease queue is left on the broker:\n%s", out)
			}
		})
	}
}

// The router-traced side delivers everything and exports its spans to the sink.
func TestRouterTracedEndToEnd(t *testing.T) {
	env := testEnv(t)
	sink, err := StartOTLPSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	side := Router{Bin: buildBinary(t, "../cmd/router"), Label: "router-traced",
		Config: RouterConfig{URL: rabbit.URL(), Prefetch: 100, TracingEndpoint: sink.URL}}
	checkThroughput(t, env, side, 1000)
	// Three spans per event (receive, process, send), exported within the router's batch
	// interval, which a graceful stop flushes.
	if got := sink.Spans(); got < 3*1000 {
		t.Errorf("the sink received %d spans for 1000 events, want at least 3000", got)
	}
}

func TestShovelEndToEnd(t *testing.T) {
	env := testEnv(t)
	if out, err := exec.Command("rabbitmq-plugins", "is_enabled", "rabbitmq_shovel").CombinedOutput(); err != nil {
		// make bench enables it; tests leave the shared broker's plugins alone.
		t.Skipf("plugin rabbitmq_shovel is not enabled (make bench enables it): %s", out)
	}
	side := Shovel{URL: rabbit.URL(), Prefetch: 100}
	t.Run("throughput", func(t *testing.T) { checkThroughput(t, env, side, 1000) })
	t.Run("latency", func(t *testing.T) { checkLatency(t, env, side) })
}

func TestRouterGoGuestsWarmCache(t *testing.T) {
	env := testEnv(t)
	filter, transform := "../examples/wasm/threshold/threshold.wasm", "../examples/wasm/redact/redact.wasm"
	for _, p := range []string{filter, transform} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%v (make wasm builds the example guests)", err)
		}
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	side := Router{Bin: buildBinary(t, "../cmd/router"), Label: "router-go", WarmCache: true, Config: RouterConfig{
		URL: rabbit.URL(), Prefetch: 100, Filter: abs(filter), Transform: abs(transform),
		ModuleConfig: map[string]string{"min": "100", "fields": "id"},
	}}
	checkThroughput(t, env, side, 500)
}

// BenchmarkE2E runs full throughput runs of each side, one per iteration (run it with
// -benchtime=1x -count=N, or use bench/cmd/e2e, which alternates the sides). It needs
// WASMROUTER_BENCH=1; WASMROUTER_BENCH_N sets the messages per run (default 100000).
func BenchmarkE2E(b *testing.B) {
	if os.Getenv("WASMROUTER_BENCH") != "1" {
		b.Skip("end-to-end benchmark: set env WASMROUTER_BENCH=1 (it takes minutes)")
	}
	env := testEnv(b)
	n := envInt("WASMROUTER_BENCH_N", 100000)
	sides := []Side{
		Baseline{Bin: buildBaseline(b), URL: rabbit.URL(), Prefetch: 1000},
		Router{Bin: buildBinary(b, "../cmd/router"), Config: RouterConfig{URL: rabbit.URL(), Prefetch: 1000}},
	}
	for _, side := range sides {
		b.Run("side="+side.Name(), func(b *testing.B) {
			var elapsed, cpu time.Duration
			var peak int64
			for range b.N {
				r, err := env.Throughput(context.Background(), side, ThroughputSpec{N: n, Size: 1024, Timeout: 10 * time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				elapsed, cpu, peak = elapsed+r.Elapsed, cpu+r.CPU, max(peak, r.Peak)
			}
			msgs := float64(n * b.N)
			b.ReportMetric(float64(elapsed)/msgs, "ns/op")
			b.ReportMetric(msgs/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(cpu)/msgs, "cpu-ns/msg")
			b.ReportMetric(float64(peak), "peak-rss-bytes")
		})
	}
}

func TestMemoryPhases(t *testing.T) {
	env := testEnv(t)
	side := Router{Bin: buildBinary(t, "../cmd/router"), Config: RouterConfig{URL: rabbit.URL(), Prefetch: 100}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 300
	profiles := t.TempDir()
	res, err := env.Memory(ctx, side, MemorySpec{N: n, Size: 512, Every: 20 * time.Millisecond, Timeout: time.Minute, ProfileDir: profiles})
	if err != nil {
		t.Fatal(err)
	}
	for _, phase := range []string{"run", "outage", "replay"} {
		if b, err := os.ReadFile(filepath.Join(profiles, phase+"-peak.txt")); err != nil || !bytes.Contains(b, []byte("# NextGC = ")) {
			t.Errorf("phase %s: runtime statistics %q, %v", phase, b, err)
		}
		if b, err := os.ReadFile(filepath.Join(profiles, phase+"-peak.pb.gz")); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("phase %s: heap profile not a gzip file: %v", phase, err)
		}
	}
	if len(res.Phases) != 3 || res.Phases[0].Name != "run" || res.Phases[1].Name != "outage" || res.Phases[2].Name != "replay" {
		t.Fatalf("phases %+v", res.Phases)
	}
	for _, ph := range res.Phases {
		if ph.Peak <= 0 || ph.End <= ph.Start {
			t.Errorf("phase %s: peak %d, span %s-%s", ph.Name, ph.Peak, ph.Start, ph.End)
		}
	}
	if res.Phases[2].Events != 2*n || len(res.Samples) == 0 || res.VmHWM <= 0 {
		t.Errorf("replay events %d, %d samples, VmHWM %d", res.Phases[2].Events, len(res.Samples), res.VmHWM)
	}
	var svg bytes.Buffer
	if err := WriteMemorySVG(&svg, "test <plot>", res, 32<<20); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, svg.Bytes())
}
