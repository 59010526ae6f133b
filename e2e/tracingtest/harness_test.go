package tracingtest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/adminapi"
	"github.com/wasmrouter/wasmrouter/internal/testutil/inproc"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// world is one test's broker objects: a source exchange the router consumes and a target
// exchange with a queue bound to it.
type world struct {
	t                   *testing.T
	dir                 string
	conn                *amqp.Connection
	ch                  *amqp.Channel
	source, queue       string
	target, targetQueue string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	rabbit.SkipIfShort(t)
	conn := rabbit.Dial(t)
	w := &world{
		t: t, dir: t.TempDir(), conn: conn, ch: rabbit.Channel(t, conn),
		source: rabbit.Unique("tr.src"), queue: rabbit.Unique("tr.router"), target: rabbit.Unique("tr.out"),
	}
	for _, x := range []string{w.source, w.target} {
		if err := w.ch.ExchangeDeclare(x, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			t.Fatalf("declare %s: %v", x, err)
		}
		rabbit.DeleteExchangeAtCleanup(t, x)
	}
	rabbit.DeleteQueueAtCleanup(t, w.queue)
	w.targetQueue = rabbit.DeclareQueueBound(t, w.ch, w.target, "#")
	return w
}

// config is a router reading w.source and delivering every event to w.target through the
// keyfilter example guest (which keeps events whose region header is "eu"), plus extra blocks.
func (w *world) config(extra string) string {
	return fmt.Sprintf(`
router { log_level = "debug" }
store { path = "data/router.db" }
cluster "main" { url = %q }
source "in" {
  cluster  = "main"
  exchange = %q
  queue    = %q
}
target "out" {
  cluster  = "main"
  exchange = %q
}
module "eu_only" {
  path   = %q
  config = { header = "region", value = "eu" }
}
route "orders" {
  source  = "in"
  filters = ["eu_only"]
  targets = ["out"]
}
%s`, rabbit.URL(), w.source, w.queue, w.target, repoFile(w.t, "examples/wasm/keyfilter/keyfilter.wasm"), extra)
}

func tracingBlock(endpoint string) string {
	return fmt.Sprintf("tracing {\n  endpoint = %q\n  service_name = \"router-under-test\"\n}\n", endpoint)
}

func (w *world) start(cfg string) *inproc.Router {
	w.t.Helper()
	path := filepath.Join(w.dir, "router.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		w.t.Fatal(err)
	}
	r := inproc.Start(w.t, inproc.LoadFile(w.t, path), inproc.Options{})
	r.WaitReady(w.t, 30*time.Second)
	return r
}

func (w *world) publish(msgs ...amqp.Publishing) {
	w.t.Helper()
	rabbit.PublishConfirmed(w.t, w.ch, w.source, "order.created", msgs...)
}

// take consumes n messages from the target queue, failing the test if they do not all come.
func (w *world) take(n int) []amqp.Delivery {
	w.t.Helper()
	got := rabbit.Collect(w.t, w.ch, w.targetQueue, n, 30*time.Second)
	if len(got) != n {
		w.t.Fatalf("%d of %d messages reached the target", len(got), n)
	}
	return got
}

func repoFile(t testing.TB, rel string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", rel)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return path
}

// metric reads one unlabelled counter from the router's /metrics.
func metric(t testing.TB, admin, name string) float64 {
	t.Helper()
	code, body, err := adminapi.Get(admin, "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not exported", name)
	return 0
}

// waitUntil polls cond (it reads state the router changes on its own goroutines) until it holds.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
