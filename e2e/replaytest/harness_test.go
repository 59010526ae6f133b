package replaytest

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/inproc"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
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
	*inproc.Router
	t *testing.T
}

// startRouter runs the configuration at path until stop (or the test's end), with its admin
// API on a free port, and returns once every source consumes.
func (w *world) startRouter(path string) *runningRouter {
	w.t.Helper()
	r := inproc.Start(w.t, inproc.LoadFile(w.t, path), inproc.Options{LogLevel: slog.LevelWarn})
	r.WaitReady(w.t, 30*time.Second)
	return &runningRouter{Router: r, t: w.t}
}

// stop stops the router gracefully, failing the test on an error.
func (r *runningRouter) stop() {
	r.t.Helper()
	if err := r.Stop(); err != nil {
		r.t.Errorf("router: %v", err)
	}
}

// waitDelivered waits until every delivery stream has settled the whole log, of n events.
func (r *runningRouter) waitDelivered(t *testing.T, n uint64) {
	t.Helper()
	waitUntil(t, 30*time.Second, fmt.Sprintf("%d events to be logged and settled", n), func() bool {
		st := r.Engine.Status()
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

// logWithRouterStopped runs a router on oneRoute until the messages with msgIDs, published to
// the source, are logged and delivered to out (and taken from it), then stops it. It returns
// a CLI configuration whose admin address does not answer, so the CLI works on the log itself.
func (w *world) logWithRouterStopped(out *consumer, msgIDs []string) (cliCfg string) {
	w.t.Helper()
	r := w.startRouter(w.writeConfig("router.hcl", "127.0.0.1:0", oneRoute))
	w.publish("order.x", msgIDs...)
	out.take(len(msgIDs), waitMsgs)
	r.waitDelivered(w.t, uint64(len(msgIDs)))
	r.stop()
	return w.writeConfig("cli.hcl", deadAddr(w.t), oneRoute)
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
