package multicluster

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/adminapi"
	"github.com/wasmrouter/wasmrouter/internal/testutil/inproc"
)

// hclString quotes s for HCL: Go quoting, with template sequences escaped.
func hclString(s string) string {
	q := strconv.Quote(s)
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}

func clusterBlock(name, url string) string {
	return fmt.Sprintf("cluster %s {\n  url = %s\n}\n", hclString(name), hclString(url))
}

func sourceBlock(name, cluster, exchange, queue string) string {
	return fmt.Sprintf("source %s {\n  cluster = %s\n  exchange = %s\n  queue = %s\n  prefetch = 500\n}\n",
		hclString(name), hclString(cluster), hclString(exchange), hclString(queue))
}

func targetBlock(name, cluster, exchange string) string {
	return fmt.Sprintf("target %s {\n  cluster = %s\n  exchange = %s\n}\n", hclString(name), hclString(cluster), hclString(exchange))
}

// multiTargetBlock is a target on several clusters in mode "all" or "failover".
func multiTargetBlock(name, mode, exchange string, clusters ...string) string {
	q := make([]string, len(clusters))
	for i, c := range clusters {
		q[i] = hclString(c)
	}
	return fmt.Sprintf("target %s {\n  clusters = [%s]\n  mode = %s\n  exchange = %s\n}\n",
		hclString(name), strings.Join(q, ", "), hclString(mode), hclString(exchange))
}

// matchRouteBlock is a route taking only the events whose routing key matches pattern.
func matchRouteBlock(name, source, pattern string, targets ...string) string {
	r := routeBlock(name, source, targets...)
	return strings.Replace(r, "\n  targets", "\n  match = ["+hclString(pattern)+"]\n  targets", 1)
}

func routeBlock(name, source string, targets ...string) string {
	q := make([]string, len(targets))
	for i, t := range targets {
		q[i] = hclString(t)
	}
	return fmt.Sprintf("route %s {\n  source = %s\n  targets = [%s]\n}\n", hclString(name), hclString(source), strings.Join(q, ", "))
}

// routerRun is a router started with app.Run in this process; the methods here read its
// admin API.
type routerRun struct{ *inproc.Router }

// startRouter runs a router on the config blocks in src (a store in a temporary directory is
// added) and returns once its admin API is up; it does not wait for readiness. The router is
// stopped when the test ends, and its log shown if the test failed.
func startRouter(t testing.TB, src string) *routerRun {
	t.Helper()
	return startRouterIn(t, t.TempDir(), src)
}

// startRouterIn is startRouter with the store in dir, for a router that restarts on its log.
func startRouterIn(t testing.TB, dir, src string) *routerRun {
	t.Helper()
	src = fmt.Sprintf("store {\n  path = %s\n}\n", hclString(filepath.Join(dir, "router.db"))) + src
	cfg := inproc.LoadBytes(t, []byte(src), filepath.Join(dir, "router.hcl"))
	return &routerRun{inproc.Start(t, cfg, inproc.Options{})}
}

// get fetches an admin API path.
func (r *routerRun) get(path string) (int, []byte, error) { return adminapi.Get(r.Admin, path) }

// readyz is the /readyz status code and body.
func (r *routerRun) readyz(t testing.TB) (int, string) {
	t.Helper()
	code, body, err := r.get("/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	return code, string(body)
}

// waitReady waits until /readyz answers 200.
func (r *routerRun) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	var body string
	waitFor(t, timeout, func() bool {
		var code int
		code, body = r.readyz(t)
		return code == http.StatusOK
	}, func() string { return "router never ready: " + body })
}

// waitFor polls cond every 20ms until it holds, failing the test with msg() after timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, msg())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
