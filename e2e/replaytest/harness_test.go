package replaytest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/app"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/router"
)

// adminToken protects the routers' admin APIs in these tests.
const adminToken = "e2e-token"

// world is one test's broker objects and directory: a source exchange that the router consumes
// from, and two target exchanges.
type world struct {
	t                        *testing.T
	dir                      string
	conn                     *amqp.Connection
	source, queue, out, out2 string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	conn := rabbit.Dial(t)
	w := &world{
		t: t, dir: t.TempDir(), conn: conn,
		source: rabbit.Unique("rt.src"), queue: rabbit.Unique("rt.router"),
		out: rabbit.Unique("rt.out"), out2: rabbit.Unique("rt.out2"),
	}
	ch := rabbit.Channel(t, conn)
	defer ch.Close()
	// The router declares these too; the test binds queues to the targets before it starts.
	for _, x := range []string{w.source, w.out, w.out2} {
		if err := ch.ExchangeDeclare(x, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			t.Fatalf("declare %s: %v", x, err)
		}
		rabbit.DeleteExchangeAtCleanup(t, x)
	}
	rabbit.DeleteQueueAtCleanup(t, w.queue)
	return w
}

// configTemplate is the base configuration; the routes come from the test.
const configTemplate = `
router {
  admin_addr  = %q
  admin_token = %q
  log_level   = "warn"
}
store { path = "data/router.db" }
cluster "main" { url = %q }
source "in" {
  cluster  = "main"
  exchange = %q
  queue    = %q
  bindings = ["#"]
}
target "out" {
  cluster  = "main"
  exchange = %q
}
target "out2" {
  cluster  = "main"
  exchange = %q
}
%s
`

// oneRoute takes everything to target out, dead-lettering a refused event at the first try.
const oneRoute = `
route "all" {
  source  = "in"
  targets = ["out"]
  retry {
    attempts    = 1
    backoff     = "5ms"
    max_backoff = "10ms"
  }
}`

// writeConfig writes a configuration named name into the test's directory (so that every
// configuration of a test shares its log) and returns its path.
func (w *world) writeConfig(name, adminAddr, routes string) string {
	w.t.Helper()
	src := fmt.Sprintf(configTemplate, adminAddr, adminToken, rabbit.URL(), w.source, w.queue, w.out, w.out2, routes)
	path := filepath.Join(w.dir, name)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return path
}

// runningRouter is a router run in-process with app.Run.
type runningRouter struct {
	addr   string // the admin API's bound address
	engine *router.Engine
	stop   func()
}

// startRouter runs the configuration at path until stop (or the test's end), with its admin
// API on a free port, and returns once every source consumes.
func (w *world) startRouter(path string) *runningRouter {
	t := w.t
	t.Helper()
	var diags bytes.Buffer
	cfg := app.LoadConfig(path, &diags)
	if cfg == nil {
		t.Fatalf("config: %s", diags.String())
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan app.Running, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, cfg, log, app.Options{AdminAddr: "127.0.0.1:0", Started: func(r app.Running) { started <- r }})
	}()
	var r app.Running
	select {
	case r = <-started:
	case err := <-done:
		cancel()
		t.Fatalf("router did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("router did not start within 30s")
	}
	var once sync.Once
	rr := &runningRouter{addr: r.AdminAddr, engine: r.Engine}
	rr.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("router: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("router did not stop within 30s")
			}
		})
	}
	t.Cleanup(rr.stop)
	waitUntil(t, 30*time.Second, "the router to be ready", func() bool { return rr.engine.Status().Ready })
	return rr
}

// waitDelivered waits until every delivery stream has settled the whole log, of n events.
func (r *runningRouter) waitDelivered(t *testing.T, n uint64) {
	t.Helper()
	waitUntil(t, 30*time.Second, fmt.Sprintf("%d events to be logged and settled", n), func() bool {
		st := r.engine.Status()
		if st.Store.LastSeq != n {
			return false
		}
		for _, s := range st.Streams {
			if s.Position != n {
				return false
			}
		}
		return true
	})
}

// waitUntil polls cond until it holds or the timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publish sends messages with the given ids to the source exchange, confirmed.
func (w *world) publish(key string, ids ...string) {
	w.t.Helper()
	ch := rabbit.Channel(w.t, w.conn)
	defer ch.Close()
	msgs := make([]amqp.Publishing, len(ids))
	for i, id := range ids {
		msgs[i] = amqp.Publishing{MessageId: id, Body: []byte("body of " + id), DeliveryMode: amqp.Persistent}
	}
	rabbit.PublishConfirmed(w.t, ch, w.source, key, msgs...)
}

// ids makes n message ids: prefix-1 .. prefix-n.
func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i+1)
	}
	return out
}
