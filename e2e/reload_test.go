package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// reloadWorld is a router with a source and three targets whose configuration a test rewrites
// and reloads.
type reloadWorld struct {
	dir, path    string
	srcX         string
	base         string // cluster, source, targets
	queues       map[string]string
	collectors   map[string]*collector
	wasm         string // the filter module's file, in dir
	originalWasm []byte
}

func newReloadWorld(t *testing.T) *reloadWorld {
	t.Helper()
	w := &reloadWorld{dir: t.TempDir(), queues: map[string]string{}, collectors: map[string]*collector{}}
	w.path = filepath.Join(w.dir, "router.hcl")
	srcX, srcQ := sourceNames(t)
	w.srcX = srcX
	w.base = clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ)
	for _, name := range []string{"t1", "t2", "t3"} {
		x := rabbit.Unique("e2e.reload." + name)
		w.queues[name] = targetQueue(t, x)
		w.base += targetBlock(name, "main", x)
		w.collectors[name] = collect(t, w.queues[name])
	}
	wasm, err := os.ReadFile(wasmRepoFile(t, "examples/wasm/keyfilter/keyfilter.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	w.originalWasm = wasm
	w.wasm = filepath.Join(w.dir, "keyfilter.wasm")
	w.writeWasm(t, false)
	return w
}

// writeWasm writes the filter module; rebuilt adds a custom section, as a rebuild with other
// debug information would: another file, the same behaviour.
func (w *reloadWorld) writeWasm(t *testing.T, rebuilt bool) {
	t.Helper()
	b := slices.Clone(w.originalWasm)
	if rebuilt {
		name := "rebuilt"
		payload := fmt.Sprintf("%d", time.Now().UnixNano())
		b = append(b, 0, byte(1+len(name)+len(payload)), byte(len(name)))
		b = append(b, name...)
		b = append(b, payload...)
	}
	if err := os.WriteFile(w.wasm, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (w *reloadWorld) write(t *testing.T, routes string) {
	t.Helper()
	src := w.base + `
module "orders_only" {
  path   = ` + hclString(w.wasm) + `
  config = { prefix = "order." }
}
` + routes
	if err := os.WriteFile(w.path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The configurations a reload test alternates. "all" -> t1 never changes; "orders" -> t2
// takes every order.* event in each of them (its match and its module change, not what it
// selects among order.x keys).
var reloadConfigs = []struct {
	name    string
	routes  string
	rebuilt bool
}{
	{"A", reloadRoutes(`"order.*"`, `"t2"`, ""), false},
	{"B: add a route, change a match, rebuilt module", reloadRoutes(`"order.#"`, `"t2"`, `route "extra" {
  source  = "in"
  match   = ["other.*"]
  targets = ["t3"]
}
`), true},
	{"C: remove a route, add a target", reloadRoutes(`"order.#"`, `"t2", "t3"`, ""), true},
}

// reloadRoutes is a reload configuration's routes: "all" -> t1, "orders" through the filter
// with the given match and targets (HCL list elements), then extra.
func reloadRoutes(ordersMatch, ordersTargets, extra string) string {
	return `
route "all" {
  source  = "in"
  targets = ["t1"]
}
route "orders" {
  source  = "in"
  match   = [` + ordersMatch + `]
  filters = ["orders_only"]
  targets = [` + ordersTargets + `]
}
` + extra
}

// Reloads under steady traffic, many in a row: nothing is lost or delivered twice on the
// routes that stay, the source is never interrupted (no redelivery), every reload says what it
// changed and what it left undelivered.
func TestReloadUnderTraffic(t *testing.T) {
	rabbit.SkipIfShort(t)
	w := newReloadWorld(t)
	w.write(t, reloadConfigs[0].routes)
	r := startRouter(t, w.path)

	// About 400 messages a second, half order.x, half other.y.
	orders := publishUntilEnd(t, w.srcX, "ord", "order.x", 200)
	others := publishUntilEnd(t, w.srcX, "oth", "other.y", 200)

	const reloads = 9
	applied := 0
	consumed := 0.0
	for i := 1; i <= reloads; i++ {
		c := reloadConfigs[i%len(reloadConfigs)]
		w.writeWasm(t, c.rebuilt && i%2 == 1)
		w.write(t, c.routes)
		consumed = waitConsumedMore(t, r.Admin, consumed, 40) // traffic under each generation
		ans := r.Reloader.Do(context.Background(), app.ReloadRequest{}, "test")
		if len(ans.Diagnostics) > 0 {
			t.Fatalf("reload %d (%s) refused: %v", i, c.name, ans.Diagnostics)
		}
		if ans.Applied {
			applied++
		}
		t.Logf("reload %d to %s: generation %d in %.1f ms; changes %v; abandoned %v", i, c.name, ans.Generation, ans.Millis, ans.Changes, ans.Abandoned)
		if ans.Generation != 1+applied {
			t.Fatalf("generation %d after %d applied reloads", ans.Generation, applied)
		}
		if strings.HasPrefix(c.name, "C") && len(ans.Abandoned) != 1 {
			t.Errorf("removing route extra reported %v, want one abandoned stream", ans.Abandoned)
		}
	}
	waitConsumedMore(t, r.Admin, consumed, 40)
	orderIDs, err := orders.end()
	if err != nil {
		t.Fatal(err)
	}
	otherIDs, err := others.end()
	if err != nil {
		t.Fatal(err)
	}
	all := append(slices.Clone(orderIDs), otherIDs...)
	t.Logf("published %d messages across %d reloads", len(all), reloads)

	// The route that never changed: everything, once.
	t1 := w.collectors["t1"]
	t1.waitIDs(t, "t1 (route all, unchanged)", all, 60*time.Second)
	if d := t1.duplicates(); len(d) > 0 {
		t.Errorf("t1 got %d messages twice: %v", len(d), sample(countKeys(d)))
	}
	// Without a gap, in order: each publisher's messages arrive in the order they were sent.
	checkOrder(t, "t1", t1.messages(), "ord-")
	checkOrder(t, "t1", t1.messages(), "oth-")

	// The route whose match and module changed: every order event, once, and nothing else.
	t2 := w.collectors["t2"]
	t2.waitIDs(t, "t2 (route orders)", orderIDs, 60*time.Second)
	if d := t2.duplicates(); len(d) > 0 {
		t.Errorf("t2 got %d messages twice: %v", len(d), sample(countKeys(d)))
	}
	for _, m := range t2.messages() {
		if !strings.HasPrefix(m.MessageId, "ord-") {
			t.Fatalf("t2 got %s, which its filter drops", m.MessageId)
		}
	}
	checkOrder(t, "t2", t2.messages(), "ord-")

	// t3 came and went: never twice.
	if d := w.collectors["t3"].duplicates(); len(d) > 0 {
		t.Errorf("t3 got %d messages twice: %v", len(d), sample(countKeys(d)))
	}

	// The source never stopped: each message consumed once, none redelivered. A delivery the
	// broker marks redelivered is a second delivery of a message, so consumed = published
	// means the redelivered flag was never set.
	text := scrape(t, r.Admin)
	consumed, _ = metricValue(text, "router_events_consumed_total", map[string]string{"source": "in"})
	dups, _ := metricValue(text, "router_events_duplicate_total", map[string]string{"source": "in"})
	if int(consumed) != len(all) || dups != 0 {
		t.Errorf("consumed %v deliveries (%v redeliveries recognised) for %d messages: the source was interrupted", consumed, dups, len(all))
	}
	if gen, _ := metricValue(text, "router_config_generation", nil); int(gen) != 1+applied {
		t.Errorf("router_config_generation = %v, want %d", gen, 1+applied)
	}
	if n, _ := metricValue(text, "router_config_reloads_total", map[string]string{"result": "applied"}); int(n) != reloads {
		t.Errorf("router_config_reloads_total{result=applied} = %v, want %d", n, reloads)
	}
	if st := r.Engine.Status(); int(st.Generation) != 1+applied {
		t.Errorf("status generation %d, want %d", st.Generation, 1+applied)
	}
}

// waitConsumedMore waits until the source "in" has consumed more than n messages beyond
// since, and returns the count.
func waitConsumedMore(t *testing.T, admin string, since float64, n int) float64 {
	t.Helper()
	var now float64
	waitFor(t, 30*time.Second, func() bool {
		now, _ = metricValue(scrape(t, admin), "router_events_consumed_total", map[string]string{"source": "in"})
		return now >= since+float64(n)
	}, func() string { return fmt.Sprintf("the source consumed %v, not %v more than %v", now, n, since) })
	return now
}

// checkOrder fails the test unless the messages whose ids start with prefix arrived in
// increasing id order (ids are numbered in publishing order).
func checkOrder(t *testing.T, what string, msgs []amqp.Delivery, prefix string) {
	t.Helper()
	last := ""
	for _, m := range msgs {
		if !strings.HasPrefix(m.MessageId, prefix) {
			continue
		}
		if m.MessageId < last {
			t.Errorf("%s: %s arrived after %s", what, m.MessageId, last)
			return
		}
		last = m.MessageId
	}
}

func countKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
