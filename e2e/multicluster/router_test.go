package multicluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/app"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/logbuf"
	"github.com/wasmrouter/wasmrouter/router"
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

// logBuffer keeps the router's log for failure messages.
type logBuffer = logbuf.Buffer

// routerRun is a router started with app.Run in this process.
type routerRun struct {
	admin  string
	engine *router.Engine
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan error

	once    sync.Once
	stopErr error
}

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
	cfg, diags := config.LoadBytes([]byte(src), filepath.Join(dir, "router.hcl"), func(string) (string, bool) { return "", false })
	if diags.HasErrors() {
		var b bytes.Buffer
		config.FormatDiagnostics(&b, diags)
		t.Fatalf("config does not load:\n%s\n%s", b.String(), src)
	}
	r := &routerRun{logs: &logBuffer{}, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
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
			t.Logf("router log (last lines):\n%s", r.logs.Tail(80))
		}
	})
	select {
	case run := <-started:
		r.admin, r.engine = run.AdminAddr, run.Engine
	case err := <-r.done:
		r.once.Do(func() {})
		t.Fatalf("router did not start: %v\n%s", err, r.logs.Tail(40))
	case <-time.After(30 * time.Second):
		t.Fatalf("router not started after 30s:\n%s", r.logs.Tail(40))
	}
	return r
}

// stop cancels the router and waits for app.Run to return; idempotent.
func (r *routerRun) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.stopErr = <-r.done:
		case <-time.After(30 * time.Second):
			r.stopErr = errors.New("app.Run did not return within 30s of cancel")
		}
	})
	return r.stopErr
}

// get fetches an admin API path.
func (r *routerRun) get(path string) (int, []byte, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + r.admin + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// readyz is the /readyz status code and body.
func (r *routerRun) readyz(t testing.TB) (int, string) {
	t.Helper()
	code, body, err := r.get("/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	return code, string(body)
}

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
