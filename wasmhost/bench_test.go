package wasmhost

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// body1KiB is an order of exactly 1 KiB with the amount after the items, so a filter reading it
// has to walk most of the document.
var body1KiB = func() []byte {
	var b strings.Builder
	b.WriteString(`{"id":"ord-000123","created":"2024-05-01T12:00:00Z","customer":{"id":"c-42","name":"Ann Example",` +
		`"email":"ann@example.com","address":{"street":"1 Main St","city":"Springfield","zip":"12345","country":"US"}},"items":[`)
	for i := 0; b.Len() < 850; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"A-%03d","qty":%d,"price":%d.99,"name":"Widget \"%d\""}`, i, i%5+1, i*3, i)
	}
	b.WriteString(`],"amount":150.25,"currency":"EUR","notes":"`)
	for b.Len() < 1024-2 {
		b.WriteByte('n')
	}
	b.WriteString(`"}`)
	return []byte(b.String())
}()

// body1KiBFirst is the same order with the amount first: the cheap case.
var body1KiBFirst = []byte(`{"amount":150.25,` + strings.Replace(string(body1KiB[1:]), `"amount":150.25,`, "", 1))

type benchGuest struct{ name, path string }

// reportCPU adds the process CPU time per operation since start (0 where unsupported).
func reportCPU(b *testing.B, start time.Duration) {
	if used := processCPU() - start; used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func filterGuests() []benchGuest {
	return []benchGuest{
		{"noop-c", cGuest("noop")},
		{"noop-go", goGuest("noop")},
		{"noop-as", asGuest("noop")},
		{"threshold-c", cGuest("threshold")},
		{"threshold-c/field-first", cGuest("threshold")},
		{"threshold-go", goGuest("threshold")},
		{"threshold-go/field-first", goGuest("threshold")},
		{"threshold-go-encoding-json", goGuest("jsonstd")},
	}
}

// BenchmarkFilter1KiB is the cost of one filter call on a 1 KiB JSON body through the whole
// host path (pool, body copy, guest, metrics). The amount comes after 850 bytes of nested
// objects and arrays, except in the field-first cases.
func BenchmarkFilter1KiB(b *testing.B) {
	if len(body1KiB) != 1024 || len(body1KiBFirst) != 1024 {
		b.Fatalf("bodies are %d and %d bytes", len(body1KiB), len(body1KiBFirst))
	}
	for _, g := range filterGuests() {
		b.Run(g.name, func(b *testing.B) {
			h := newHost(b)
			m := h.load(b, ModuleConfig{Path: g.path, Config: map[string]string{"min": "100"}})
			in := &Invocation{Event: testEvent()}
			in.Event.Body = body1KiB
			if strings.HasSuffix(g.name, "field-first") {
				in.Event.Body = body1KiBFirst
			}
			if out := m.Call(context.Background(), RoleFilter, in); out.Code != Continue {
				b.Fatalf("%v %q", out.Code, out.Reason)
			}
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				m.Call(context.Background(), RoleFilter, in)
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkInstantiate is the cost of a new instance (instantiation and _initialize) and its
// guest memory.
// BenchmarkCompile is a first start's cost per module: instrumenting and compiling it with an
// empty cache (a later start loads the compiled code from data/wasm-cache).
func BenchmarkCompile(b *testing.B) {
	for _, g := range []benchGuest{{"noop-c", cGuest("noop")}, {"noop-go", goGuest("noop")}, {"noop-as", asGuest("noop")},
		{"conformance-as", asGuest("conformance")}, {"threshold-c", cGuest("threshold")}, {"threshold-go", goGuest("threshold")}} {
		b.Run(g.name, func(b *testing.B) {
			ctx := context.Background()
			size := 0
			cpu := processCPU()
			for b.Loop() {
				h, err := New(ctx, Options{}) // an in-memory cache of its own: nothing is cached yet
				if err != nil {
					b.Fatal(err)
				}
				if err := h.Check(ctx, g.name, g.path, nil); err != nil {
					b.Fatal(err)
				}
				_ = h.Close(ctx)
			}
			if info, err := os.Stat(g.path); err == nil {
				size = int(info.Size())
			}
			reportCPU(b, cpu)
			b.ReportMetric(float64(size), "wasm-bytes")
		})
	}
}

func BenchmarkInstantiate(b *testing.B) {
	for _, g := range []benchGuest{{"c", cGuest("threshold")}, {"go", goGuest("threshold")}} {
		b.Run(g.name, func(b *testing.B) {
			h := newHost(b)
			m := h.load(b, ModuleConfig{Path: g.path, Config: map[string]string{"min": "100"}})
			var mem uint32
			b.ReportAllocs()
			for b.Loop() {
				inst, err := m.newInstance(reasonStart)
				if err != nil {
					b.Fatal(err)
				}
				mem = inst.mem.Size()
				inst.close()
			}
			b.ReportMetric(float64(mem), "guest-bytes/instance")
		})
	}
}

// BenchmarkPoolScaling runs the threshold filters from 1, 2 and 4 goroutines, each pool as
// large as the number of goroutines; ns/op is wall time per call, so falling figures mean
// the calls ran in parallel.
func BenchmarkPoolScaling(b *testing.B) {
	for _, g := range []benchGuest{{"c", cGuest("threshold")}, {"go", goGuest("threshold")}} {
		for _, workers := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", g.name, workers), func(b *testing.B) {
				h := newHost(b)
				m := h.load(b, ModuleConfig{Path: g.path, PoolSize: workers, Config: map[string]string{"min": "100"}})
				b.ReportAllocs()
				b.ResetTimer()
				cpu := processCPU()
				var wg sync.WaitGroup
				for w := range workers {
					n := b.N / workers
					if w < b.N%workers {
						n++
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						in := &Invocation{Event: testEvent()}
						in.Event.Body = body1KiB
						for range n {
							m.Call(context.Background(), RoleFilter, in)
						}
					}()
				}
				wg.Wait()
				reportCPU(b, cpu)
			})
		}
	}
}

// BenchmarkExampleGuests runs what the end-to-end benchmark's router-go side runs per event:
// the example Go filter (threshold) and Go transform (redact) on a 1 KiB order, with the
// transform on a copy of the event as a route makes it. It reports the CPU per event and the
// instances replaced per 1,000 events (a Go guest whose memory grows past its recycle mark is
// replaced, at the cost of a new instance). Needs make -C examples/wasm go.
func BenchmarkExampleGuests(b *testing.B) {
	filter, transform := filepath.Join("..", "examples", "wasm", "threshold", "threshold.wasm"),
		filepath.Join("..", "examples", "wasm", "redact", "redact.wasm")
	for _, p := range []string{filter, transform} {
		if _, err := os.Stat(p); err != nil {
			b.Skipf("%s: %v (make -C examples/wasm go)", p, err)
		}
	}
	h := newHost(b)
	cfg := map[string]string{"min": "100", "fields": "id"}
	f := h.load(b, ModuleConfig{Path: filter, Name: "threshold", Config: cfg, PoolSize: 2})
	tr := h.load(b, ModuleConfig{Path: transform, Name: "redact", Config: cfg, PoolSize: 2})
	ev := testEvent()
	ev.Body = body1KiB
	ctx := context.Background()
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		if out := f.Call(ctx, RoleFilter, &Invocation{Event: ev}); out.Code != Continue {
			b.Fatalf("filter: %v %q", out.Code, out.Reason)
		}
		in := &Invocation{Event: ev.CloneSharingBody()}
		if out := tr.Call(ctx, RoleTransform, in); out.Code != Continue {
			b.Fatalf("transform: %v %q", out.Code, out.Reason)
		}
	}
	reportCPU(b, cpu)
	replaced := testutil.ToFloat64(h.met.WasmInstances.WithLabelValues("threshold", reasonMemory)) +
		testutil.ToFloat64(h.met.WasmInstances.WithLabelValues("redact", reasonMemory))
	b.ReportMetric(replaced*1000/float64(b.N), "replaced/1000ev")
}

// BenchmarkLoadCached is a restart's cost per Go module with a warm compilation cache: a new
// host on the cache directory, the module read, instrumented and taken from the cache, and its
// pool of two instances filled. The instrument case is the rewrite alone.
func BenchmarkLoadCached(b *testing.B) {
	path := filepath.Join("..", "examples", "wasm", "threshold", "threshold.wasm")
	if _, err := os.Stat(path); err != nil {
		b.Skipf("%s: %v (make -C examples/wasm go)", path, err)
	}
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "cache")
	cfg := ModuleConfig{Name: "threshold", Path: path, PoolSize: 2, Config: map[string]string{"min": "100"}}
	load := func() {
		h, err := New(ctx, Options{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.Load(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		_ = h.Close(ctx)
	}
	load() // fills the cache
	b.Run("load", func(b *testing.B) {
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			load()
		}
		reportCPU(b, cpu)
	})
	b.Run("instrument", func(b *testing.B) {
		bin, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			if _, err := instrument(bin); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	})
}
