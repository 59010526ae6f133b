package router_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/router/routertest"
	"github.com/wasmrouter/wasmrouter/store"
)

// BenchmarkIngestStream is the engine's path from a source to its targets on the bbolt log
// (without fsync), the in-memory source and a publisher that confirms at once and keeps
// nothing (routertest.Target keeps every message: copying them would be most of the time): ingest, append, then
// every (route, target) stream reading the log. Eight routes take disjoint routing keys, each
// to two targets: sixteen streams look at every event, and each event is delivered twice.
func BenchmarkIngestStream(b *testing.B) {
	const routes = 8
	var hcl strings.Builder
	hcl.WriteString(`
target "a" {
  cluster  = "main"
  exchange = "xa"
}
target "b" {
  cluster  = "main"
  exchange = "xb"
}
`)
	for i := range routes {
		fmt.Fprintf(&hcl, "route \"r%d\" {\n  source  = \"in\"\n  match   = [\"k.%d.#\"]\n  targets = [\"a\", \"b\"]\n}\n", i, i)
	}
	topo := nextTopology(b, hcl.String())
	st, err := store.Open(store.Options{Path: filepath.Join(b.TempDir(), "log.db"), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	src := routertest.NewSource("in")
	target := &countingPublisher{confirmed: confirmedAlready()}
	defer runBenchEngine(b, topo, st, src, target, nil)()

	evs := make([]*event.Event, b.N)
	body := make([]byte, 256)
	for i := range evs {
		evs[i] = &event.Event{RoutingKey: fmt.Sprintf("k.%d.x", i%routes), Body: body,
			Props: event.Properties{MessageID: fmt.Sprintf("m%d", i)}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for _, ev := range evs {
		src.Publish(ev)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for target.n.Load() < int64(2*b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", target.n.Load(), 2*b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	// The wall time per event is mostly waits (group commit, batches); the CPU the process
	// spent per event is what matching once saves.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingPublisher confirms every message at once and counts them.
type countingPublisher struct {
	n         atomic.Int64
	confirmed event.Confirmation
}

func (p *countingPublisher) Publish(context.Context, *event.Message) (event.Confirmation, error) {
	p.n.Add(1)
	return p.confirmed, nil
}
func (p *countingPublisher) WaitReady(context.Context) error { return nil }
func (p *countingPublisher) Hold() func()                    { return func() {} }
func (p *countingPublisher) Cluster() string                 { return "main" }
func (p *countingPublisher) Close() error                    { return nil }

type confirmation struct{ done chan struct{} }

func (c confirmation) Done() <-chan struct{} { return c.done }
func (c confirmation) Err() error            { return nil }

func confirmedAlready() event.Confirmation {
	c := confirmation{done: make(chan struct{})}
	close(c.done)
	return c
}

// BenchmarkPacedLatency is the router's own share of an event's latency, without a broker:
// the in-memory source is fed 1 KiB events at a fixed rate, one route takes them to one
// target, the log is fsync'd, and the target's publisher notes when each event reaches it.
// It reports the p50 and p99 from the source's hand-over to the publish (the append and its
// commit, the stream's wake-up, the route, the publish) and the CPU per event. The group
// commit wait is taken or not as the machine's idle CPU decides (store.gather).
func BenchmarkPacedLatency(b *testing.B) {
	for _, rate := range []int{500, 2000} {
		b.Run(fmt.Sprintf("rate-%d", rate), func(b *testing.B) {
			topo := nextTopology(b, `
target "a" {
  cluster  = "main"
  exchange = "xa"
}
route "r" {
  source  = "in"
  match   = ["#"]
  targets = ["a"]
}
`)
			st, err := store.Open(store.Options{Path: filepath.Join(b.TempDir(), "log.db")})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			src := routertest.NewSource("in")
			sent := make([]time.Time, b.N)
			lat := make([]time.Duration, b.N)
			target := &stampingPublisher{confirmed: confirmedAlready(), sent: sent, lat: lat}
			defer runBenchEngine(b, topo, st, src, target, nil)()
			body := make([]byte, 1024)
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			b.ResetTimer()
			cpu0 := processCPU(b)
			for i := range b.N {
				<-tick.C
				sent[i] = time.Now()
				src.Publish(&event.Event{RoutingKey: "k", Body: body,
					Props: event.Properties{MessageID: strconv.Itoa(i)}})
			}
			deadline := time.Now().Add(5 * time.Minute)
			for target.n.Load() < int64(b.N) {
				if time.Now().After(deadline) {
					b.Fatalf("delivered %d of %d", target.n.Load(), b.N)
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// stampingPublisher confirms every message at once and notes how long after its hand-over
// to the source it arrived (the message id is its index).
type stampingPublisher struct {
	n         atomic.Int64
	confirmed event.Confirmation
	sent      []time.Time
	lat       []time.Duration
}

func (p *stampingPublisher) Publish(_ context.Context, m *event.Message) (event.Confirmation, error) {
	if i, err := strconv.Atoi(m.Props.MessageID); err == nil && i < len(p.sent) && p.lat[i] == 0 {
		p.lat[i] = time.Since(p.sent[i])
		p.n.Add(1)
	}
	return p.confirmed, nil
}
func (p *stampingPublisher) WaitReady(context.Context) error { return nil }
func (p *stampingPublisher) Hold() func()                    { return func() {} }
func (p *stampingPublisher) Cluster() string                 { return "main" }
func (p *stampingPublisher) Close() error                    { return nil }

// runBenchEngine runs an engine on st with one source and one publisher for every target
// until the returned stop is called.
func runBenchEngine(b *testing.B, topo *router.Topology, st router.Log, src router.Source, target router.Publisher, tracer *tracing.Tracer) (stop func()) {
	b.Helper()
	engine, err := router.New(router.Options{
		Topology:   topo,
		Log:        st,
		Sources:    map[string]router.Source{"in": src},
		Publishers: func(string) ([]router.Publisher, error) { return []router.Publisher{target}, nil },
		Metrics:    router.NewMetrics(prometheus.NewRegistry()),
		Tracer:     tracer,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- engine.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
	}
}

// BenchmarkTracedRoute is the tracing's share of the engine's work per event, without a
// broker: the setup of the bench's router-traced side (one route without modules, one
// target; BENCHMARKS.md, Tracing) on the bbolt log (without fsync), the in-memory source and a
// publisher that confirms at once, with tracing off and on (sample ratio 1.0, every span
// encoded by the router's OTLP/HTTP exporter and posted to a collector in the process that
// discards it). The difference of the two cpu-ns/op is what tracing costs the router per
// event (the collector's reading of the requests included).
func BenchmarkTracedRoute(b *testing.B) {
	for _, traced := range []bool{false, true} {
		b.Run(fmt.Sprintf("tracing=%v", traced), func(b *testing.B) {
			topo := nextTopology(b, `
target "a" {
  cluster  = "main"
  exchange = "xa"
}
route "r" {
  source  = "in"
  match   = ["#"]
  targets = ["a"]
}
`)
			st, err := store.Open(store.Options{Path: filepath.Join(b.TempDir(), "log.db"), NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			var tracer *tracing.Tracer
			if traced {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "application/x-protobuf")
				}))
				defer srv.Close()
				tracer, err = tracing.New(context.Background(), tracing.Options{Spec: config.TracingSpec{
					SampleRatio: 1, Endpoint: srv.URL + "/v1/traces", Protocol: config.ProtocolHTTP}})
				if err != nil {
					b.Fatal(err)
				}
				defer tracer.Shutdown(context.Background())
			}
			src := routertest.NewSource("in")
			target := &countingPublisher{confirmed: confirmedAlready()}
			defer runBenchEngine(b, topo, st, src, target, tracer)()
			evs := make([]*event.Event, b.N)
			body := make([]byte, 1024)
			for i := range evs {
				evs[i] = &event.Event{RoutingKey: "k", Body: body,
					Headers: event.Table{"tenant": "acme", "x-bench-seq": int64(i)}}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU(b)
			for _, ev := range evs {
				src.Publish(ev)
			}
			deadline := time.Now().Add(5 * time.Minute)
			for target.n.Load() < int64(b.N) {
				if time.Now().After(deadline) {
					b.Fatalf("delivered %d of %d", target.n.Load(), b.N)
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
