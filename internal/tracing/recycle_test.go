package tracing

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// With the router's exporter, spans go back to their pool once encoded, as they end, and are
// recorded again. Several goroutines record events while small batches are exported: every
// span must reach the collector once, with its own name and attributes, never another event's.
// Run with -race, this also catches a span used after its End (spancheck_race.go).
func TestRecycledSpansExportIntact(t *testing.T) {
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	tr, err := New(context.Background(), Options{
		Spec:       config.TracingSpec{SampleRatio: 1, Endpoint: srv.URL + "/v1/traces", Protocol: config.ProtocolHTTP},
		Dropped:    dropped,
		Batch:      7, // small batches: recording and recycling overlap
		QueueBytes: 1 << 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.proc.recycle {
		t.Fatal("the router's exporter does not recycle spans")
	}
	const workers, events = 4, 300
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range events {
				ev := testEvent(event.Table{"traceparent": sourceParent})
				ev.Seq = uint64(i + 1)
				ev.Props.MessageID = fmt.Sprintf("m-%d-%d", w, i)
				route := fmt.Sprintf("r%d", w)
				recv := tr.StartReceive(ev, "q")
				EndReceive(recv, ev.Seq, false, nil)
				proc := tr.StartProcess(ev, route, i%2 == 1, 0)
				EndModule(tr.StartModule(proc, "m"+route, "filter"), 0, "continue", "")
				sc := proc.SpanContext()
				EndProcess(proc, VerdictDeliver, "", "", 1)
				EndSend(tr.StartSend(sc, Delivery{Route: route, Target: "t", Exchange: "x" + route, MessageID: ev.Props.MessageID, Seq: ev.Seq}, map[string]any{}), nil)
			}
		}()
	}
	wg.Wait()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(dropped); n != 0 {
		t.Fatalf("%v spans dropped", n)
	}

	seen := map[string]int{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.bodies {
		req := decodeRequest(t, b)
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					a := map[string]string{}
					for _, kv := range s.Attributes {
						if v, ok := kv.Value.Value.(*commonpb.AnyValue_IntValue); ok {
							a[kv.Key] = fmt.Sprint(v.IntValue)
						} else {
							a[kv.Key] = kv.Value.GetStringValue()
						}
					}
					var key string
					switch s.Name[:len(s.Name)-len(lastWord(s.Name))] {
					case "receive ":
						key = s.Name + "/" + a["messaging.message.id"] + "/" + a["wasmrouter.seq"]
					case "process ", "send ":
						key = s.Name + "/" + a["wasmrouter.route"] + "/" + a["wasmrouter.seq"]
					case "module ":
						key = s.Name + "/" + a["wasmrouter.module"] + "/" + a["wasmrouter.module.result"]
					}
					seen[key]++
				}
			}
		}
	}
	want := map[string]int{}
	for w := range workers {
		route := fmt.Sprintf("r%d", w)
		for i := range events {
			want[fmt.Sprintf("receive q/m-%d-%d/%d", w, i, i+1)]++
			want[fmt.Sprintf("process %s/%s/%d", route, route, i+1)]++
			want[fmt.Sprintf("send x%s/%s/%d", route, route, i+1)]++
			want[fmt.Sprintf("module m%s/m%s/continue", route, route)]++
		}
	}
	for k, n := range want {
		if seen[k] != n {
			t.Errorf("%s: exported %d times, want %d", k, seen[k], n)
		}
	}
	for k, n := range seen {
		if want[k] == 0 {
			t.Errorf("unexpected span %s (%d times)", k, n)
		}
	}
}

func lastWord(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ' ' {
			return s[i+1:]
		}
	}
	return s
}

// A span fills its allocator size class (spanStrBytes): a field added to it should take room
// from strBuf rather than make every span 256 bytes larger.
func TestSpanFillsItsSizeClass(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit platforms")
	}
	if n := unsafe.Sizeof(span{}); n != 1536 {
		t.Errorf("a span is %d bytes, want 1536 (a size class): adjust spanStrBytes", n)
	}
}
