package e2e

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/app"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/logbuf"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// hclString quotes s for an HCL file: Go quoting, with template sequences escaped.
func hclString(s string) string {
	q := strconv.Quote(s)
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}

// writeConfig writes src as router.hcl in dir and returns its path.
func writeConfig(t testing.TB, dir, src string) string {
	t.Helper()
	path := filepath.Join(dir, "router.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadConfig loads path, failing the test on any error diagnostic.
func loadConfig(t testing.TB, path string) *config.Config {
	t.Helper()
	cfg, diags := config.Load(path, func(string) (string, bool) { return "", false })
	if diags.HasErrors() {
		var b bytes.Buffer
		config.FormatDiagnostics(&b, diags)
		t.Fatalf("config %s does not load:\n%s", path, b.String())
	}
	return cfg
}

// clusterBlock is a cluster block for url.
func clusterBlock(name, url string) string {
	return "cluster " + hclString(name) + " {\n  url = " + hclString(url) + "\n}\n"
}

// logBuffer keeps the router's log for failure messages.
type logBuffer = logbuf.Buffer

// inProcess is a router started with app.Run in this process.
type inProcess struct {
	admin   string
	logs    *logBuffer
	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
	stopErr error
}

// startRouter runs the router on the config at path and waits until it is ready. It is
// stopped gracefully when the test ends, if the test has not stopped it.
func startRouter(t testing.TB, path string) *inProcess {
	t.Helper()
	r := startRouterUnready(t, path)
	waitReady(t, r.admin, 30*time.Second)
	return r
}

// startRouterUnready runs the router without waiting for readiness.
func startRouterUnready(t testing.TB, path string) *inProcess {
	t.Helper()
	cfg := loadConfig(t, path)
	r := &inProcess{logs: &logBuffer{}, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	started := make(chan app.Running, 1)
	go func() {
		r.done <- app.Run(ctx, cfg, log, app.Options{
			AdminAddr: "127.0.0.1:0",
			Started:   func(run app.Running) { started <- run },
		})
	}()
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("router stopped with an error: %v", err)
		}
		if t.Failed() {
			t.Logf("router log (last lines):\n%s", r.logs.Tail(60))
		}
	})
	select {
	case run := <-started:
		r.admin = run.AdminAddr
	case err := <-r.done:
		r.once.Do(cancel)
		t.Fatalf("router did not start: %v\n%s", err, r.logs.Tail(40))
	case <-time.After(30 * time.Second):
		t.Fatalf("router not started after 30s:\n%s", r.logs.Tail(40))
	}
	return r
}

// stopTimeout bounds a graceful stop in the tests.
const stopTimeout = 30 * time.Second

// stop cancels the router and waits for app.Run to return; idempotent.
func (r *inProcess) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.stopErr = <-r.done:
		case <-time.After(stopTimeout):
			r.stopErr = errors.New("app.Run did not return within " + stopTimeout.String() + " of cancel")
		}
	})
	return r.stopErr
}

// stopTimed stops the router, failing the test on an error, and says how long it took.
func (r *inProcess) stopTimed(t testing.TB) time.Duration {
	t.Helper()
	start := time.Now()
	if err := r.stop(); err != nil {
		t.Fatalf("stopping the router: %v\n%s", err, r.logs.Tail(40))
	}
	return time.Since(start)
}

// freeAddr is a loopback address with a port nothing listens on now, for a router process's
// admin_addr.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// sourceBlock is a source block consuming queue, bound to exchange with "#".
func sourceBlock(name, cluster, exchange, queue string) string {
	return "source " + hclString(name) + " {\n  cluster = " + hclString(cluster) +
		"\n  exchange = " + hclString(exchange) + "\n  queue = " + hclString(queue) +
		"\n  bindings = [\"#\"]\n  prefetch = 500\n}\n"
}

// targetBlock is a target block publishing to exchange on cluster.
func targetBlock(name, cluster, exchange string) string {
	return "target " + hclString(name) + " {\n  cluster = " + hclString(cluster) +
		"\n  exchange = " + hclString(exchange) + "\n}\n"
}

// sourceNames makes a unique source exchange and queue name; the router declares them, the
// test deletes them when it ends (after the router has stopped, if it was started later).
func sourceNames(t testing.TB) (exchange, queue string) {
	exchange, queue = rabbit.Unique("e2e.in"), rabbit.Unique("e2e.router")
	rabbit.DeleteExchangeAtCleanup(t, exchange)
	rabbit.DeleteQueueAtCleanup(t, queue)
	return exchange, queue
}
