package e2e

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/inproc"
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

// clusterBlock is a cluster block for url.
func clusterBlock(name, url string) string {
	return "cluster " + hclString(name) + " {\n  url = " + hclString(url) + "\n}\n"
}

// logBuffer keeps a router process's output for failure messages.
type logBuffer = logbuf.Buffer

// startRouter runs the router in this process on the config at path and waits until it is
// ready. It is stopped gracefully when the test ends, if the test has not stopped it.
func startRouter(t testing.TB, path string) *inproc.Router {
	t.Helper()
	r := startRouterUnready(t, path)
	waitReady(t, r.Admin, 30*time.Second)
	return r
}

// startRouterUnready runs the router without waiting for readiness.
func startRouterUnready(t testing.TB, path string) *inproc.Router {
	t.Helper()
	return inproc.Start(t, inproc.LoadFile(t, path), inproc.Options{LogLevel: slog.LevelDebug})
}

// stopTimeout bounds a graceful stop in the tests.
const stopTimeout = 30 * time.Second

// stopTimed stops the router, failing the test on an error, and says how long it took.
func stopTimed(t testing.TB, r *inproc.Router) time.Duration {
	t.Helper()
	start := time.Now()
	if err := r.Stop(); err != nil {
		t.Fatalf("stopping the router: %v\n%s", err, r.Logs.Tail(40))
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

// allToOut is a router on the main broker with source "in" (exchange srcX bound to queue
// srcQ), target "out" (exchange outX) and route "all" from one to the other, without modules.
func allToOut(srcX, srcQ, outX string) string {
	return clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ) + targetBlock("out", "main", outX) + `
route "all" {
  source  = "in"
  targets = ["out"]
}
`
}

// sourceNames makes a unique source exchange and queue name; the router declares them, the
// test deletes them when it ends (after the router has stopped, if it was started later).
func sourceNames(t testing.TB) (exchange, queue string) {
	exchange, queue = rabbit.Unique("e2e.in"), rabbit.Unique("e2e.router")
	rabbit.DeleteExchangeAtCleanup(t, exchange)
	rabbit.DeleteQueueAtCleanup(t, queue)
	return exchange, queue
}
