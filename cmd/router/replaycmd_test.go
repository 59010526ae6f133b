package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/admin"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

// diffHistory seeds the log that the dry-run tests compare configurations on.
func diffHistory(t *testing.T, dir string) {
	t.Helper()
	at := time.Now().Add(-time.Hour)
	seedLog(t, storePath(dir),
		testEvent("in", "order.created", "1", at),
		testEvent("in", "order.created", "2", at),
		testEvent("in", "order.paid", "3", at),
		testEvent("in", "order.paid", "4", at),
		testEvent("in", "order.paid", "5", at),
		testEvent("in", "payment.done", "6", at),
		testEvent("in", "payment.done", "7", at),
		testEvent("in", "user.signup", "8", at),
	)
}

func TestReplayDryRunOffline(t *testing.T) {
	dir := t.TempDir()
	cfg := writeCLIConfig(t, dir, "router.hcl", cliConfig{})
	diffHistory(t, dir)

	res := runCLI(t, "replay", "-c", cfg, "--dry-run")
	if res.code != exitOK {
		t.Fatalf("exit %d, stderr: %s", res.code, res.stderr)
	}
	for _, want := range []string{"would replay 7 events\n", "selected events looked at: 7", "orders -> a  5", "pay -> a  2"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
	if strings.Contains(res.stdout, "differences") {
		t.Errorf("a plain dry run reports differences:\n%s", res.stdout)
	}

	res = runCLI(t, "replay", "-c", cfg, "--dry-run", "--route", "orders", "--from-seq", "2", "--to-seq", "4", "--json")
	if res.code != exitOK {
		t.Fatalf("exit %d, stderr: %s", res.code, res.stderr)
	}
	p := decodeProgress(t, res.stdout)
	if p.State != "done" || p.DryRun == nil || p.DryRun.WouldReplay != 3 || p.DryRun.PerTarget["orders -> a"] != 3 || len(p.DryRun.PerTarget) != 1 {
		t.Errorf("narrowed dry run: %+v %+v", p, p.DryRun)
	}
}

func decodeProgress(t *testing.T, out string) router.ReplayProgress {
	t.Helper()
	var p router.ReplayProgress
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	return p
}

func TestReplayDryRunWithConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := writeCLIConfig(t, dir, "router.hcl", cliConfig{})
	diffHistory(t, dir)
	// The candidate no longer takes order.paid, newly takes user.*, sends payments to b
	// instead of a, and order.created keeps its target.
	cand := writeCLIConfig(t, dir, "candidate.hcl", cliConfig{ordersMatch: `"order.created", "user.*"`, payTargets: `"b"`})

	res := runCLI(t, "replay", "-c", cfg, "--dry-run", "--with-config", cand, "--json")
	if res.code != exitOK {
		t.Fatalf("exit %d, stderr: %s", res.code, res.stderr)
	}
	rep := decodeProgress(t, res.stdout).DryRun
	if rep == nil || rep.Diff == nil {
		t.Fatalf("no diff in %s", res.stdout)
	}
	d := rep.Diff
	if rep.Events != 8 || rep.WouldReplay != 7 || d.NewlyRouted != 1 || d.NoLongerRouted != 3 ||
		d.RoutedElsewhere != 2 || d.OutputChanged != 0 || d.Unchanged != 2 {
		t.Errorf("report: events %d, would replay %d, diff %+v", rep.Events, rep.WouldReplay, *d)
	}
	kinds := map[string][]uint64{}
	for _, ex := range d.Examples {
		kinds[ex.Kind] = append(kinds[ex.Kind], ex.Seq)
	}
	if fmt.Sprint(kinds["newly_routed"]) != "[8]" || fmt.Sprint(kinds["routed_elsewhere"]) != "[6 7]" || len(kinds["no_longer_routed"]) != 3 {
		t.Errorf("examples: %v", kinds)
	}

	// The same in text, and an output change: b with a fixed routing key.
	cand2 := writeCLIConfig(t, dir, "candidate2.hcl", cliConfig{payTargets: `"b"`, bRoutingKey: "fixed"})
	cfgB := writeCLIConfig(t, dir, "router_b.hcl", cliConfig{payTargets: `"b"`})
	res = runCLI(t, "replay", "-c", cfgB, "--dry-run", "--with-config", cand2, "--route", "pay")
	if res.code != exitOK {
		t.Fatalf("exit %d, stderr: %s", res.code, res.stderr)
	}
	for _, want := range []string{
		"would replay 2 events", "differences with " + cand2, "output changed  2", "newly routed  0",
		`output changed: seq 6, route pay, routing key "payment.done", message id m-payment.done-6: [b] -> [b] (routing key "payment.done" -> "fixed")`,
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
}

func TestReplayUsage(t *testing.T) {
	cfg := writeCLIConfig(t, t.TempDir(), "router.hcl", cliConfig{})
	for _, args := range [][]string{
		{"--with-config", "x.hcl"},
		{"--rate", "-1"},
		{"--since", "yesterday"},
		{"--until", "-5m"},
		{"--since", "1m", "--until", "1h"},
		{"--from-seq", "5", "--to-seq", "2"},
		{"extra"},
		{"--nosuch"},
	} {
		res := runCLI(t, append([]string{"replay", "-c", cfg}, args...)...)
		if res.code != exitUsage || res.stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, res.code, res.stderr)
		}
	}
	res := runCLI(t, "replay", "--help")
	if res.code != exitOK || !strings.Contains(res.stdout, "Usage: router replay") || res.stderr != "" {
		t.Errorf("--help: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}

func TestReplayLockedWithoutAdminAPI(t *testing.T) {
	t.Parallel() // waits out the file lock
	dir := t.TempDir()
	addr := deadAddr(t)
	cfg := writeCLIConfig(t, dir, "router.hcl", cliConfig{adminAddr: addr})
	st, err := store.Open(store.Options{Path: storePath(dir), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore(t, st)
	for _, args := range [][]string{{"replay"}, {"replay", "--dry-run"}} {
		res := runCLI(t, append(args, "-c", cfg)...)
		want := fmt.Sprintf("the event log %s is locked by a running router, but its admin API at %s does not answer", storePath(dir), addr)
		if res.code != exitFail || !strings.Contains(res.stderr, want) {
			t.Errorf("%v: exit %d, stderr: %s", args, res.code, res.stderr)
		}
	}
}

// fakeReplayer is a replay backend behind the real admin HTTP handler: it records requests
// and reports a job that completes after a few polls.
type fakeReplayer struct {
	mu     sync.Mutex
	bodies []app.ReplayBody
	polls  int
	final  router.ReplayProgress
}

func (f *fakeReplayer) StartReplay(_ context.Context, body []byte) (string, error) {
	var b app.ReplayBody
	if err := json.Unmarshal(body, &b); err != nil {
		return "", fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
	}
	if len(b.Routes) == 1 && b.Routes[0] == "nosuch" {
		return "", fmt.Errorf("%w: no route %q", admin.ErrBadRequest, "nosuch")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies = append(f.bodies, b)
	return "job-1", nil
}

func (f *fakeReplayer) StopReplay(string) bool { return false }

func (f *fakeReplayer) ReplayStatus(id string) (any, bool) {
	if id != "job-1" {
		return nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	if f.polls < 3 {
		return router.ReplayProgress{ID: id, State: "running", Total: f.final.Total, Done: uint64(f.polls)}, true
	}
	return f.final, true
}

type noEngine struct{}

func (noEngine) StatusJSON() (bool, string, []string, any) { return true, "", nil, struct{}{} }

// serveAdmin runs the admin API on a free port with replayer behind it.
func serveAdmin(t *testing.T, token string, r admin.Replayer) string {
	t.Helper()
	return serveAdminWith(t, admin.Options{Token: token, Replayer: r})
}

// serveAdminWith runs the admin API on a free port with opts' token and backends.
func serveAdminWith(t *testing.T, opts admin.Options) string {
	t.Helper()
	opts.Addr, opts.Engine = "127.0.0.1:0", noEngine{}
	srv, err := admin.Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && err != http.ErrServerClosed {
			t.Errorf("admin server: %v", err)
		}
	})
	return srv.Addr()
}

func TestReplayThroughAdminAPI(t *testing.T) {
	dir := t.TempDir()
	fake := &fakeReplayer{final: router.ReplayProgress{ID: "job-1", State: "done", Total: 5, Done: 5, Delivered: 4,
		Selected: 5, Failed: 1, DeadLettered: 1, Failures: []router.JobFailure{{Seq: 7, Route: "orders", Target: "a", Reason: "NO_ROUTE", DeadLettered: true}}}}
	addr := serveAdmin(t, "s3cret", fake)
	cfg := writeCLIConfig(t, dir, "router.hcl", cliConfig{adminAddr: addr, token: "s3cret"})
	cand := writeCLIConfig(t, dir, "cand.hcl", cliConfig{})

	res := runCLI(t, "replay", "-c", cfg, "--route", "orders", "--route", "pay", "--target", "a",
		"--since", "15m", "--until", "5m", "--from-seq", "3", "--to-seq", "9", "--rate", "50")
	if res.code != exitOK || !strings.HasPrefix(res.stdout, "replayed 4 events\n") ||
		!strings.Contains(res.stderr, "selected 5, delivered 4, dropped by a filter 0, failed 1 (dead-lettered 1)") ||
		!strings.Contains(res.stderr, "failed: seq 7, route orders, target a: NO_ROUTE (dead-lettered)") {
		t.Fatalf("exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	// Relative paths are made absolute: the router resolves them in its own directory.
	res = runCLI(t, "replay", "-c", cfg, "--dry-run", "--with-config", cand)
	if res.code != exitOK {
		t.Fatalf("dry run: exit %d, stderr: %s", res.code, res.stderr)
	}
	fake.mu.Lock()
	got := fake.bodies
	fake.mu.Unlock()
	want := app.ReplayBody{ReplayRequest: router.ReplayRequest{
		Routes: []string{"orders", "pay"}, Target: "a", Since: "15m", Until: "5m", From: 3, To: 9, Rate: 50,
	}}
	if len(got) != 2 || fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Fatalf("requests %+v, want first %+v", got, want)
	}
	if !got[1].DryRun || got[1].WithConfig != cand || len(got[1].Routes) != 0 {
		t.Errorf("dry-run request %+v", got[1])
	}

	bad := writeCLIConfig(t, dir, "bad.hcl", cliConfig{adminAddr: addr, token: "wrong"})
	res = runCLI(t, "replay", "-c", bad)
	if res.code != exitFail || !strings.Contains(res.stderr, "refused router.admin_token (401)") {
		t.Errorf("wrong token: exit %d, stderr: %s", res.code, res.stderr)
	}
	res = runCLI(t, "replay", "-c", cfg, "--route", "nosuch")
	if res.code != exitFail || !strings.Contains(res.stderr, `no route "nosuch"`) {
		t.Errorf("bad request: exit %d, stderr: %s", res.code, res.stderr)
	}
}

func TestReplayThroughAdminAPIFailedJob(t *testing.T) {
	fake := &fakeReplayer{final: router.ReplayProgress{ID: "job-1", State: "failed", Total: 5, Done: 2, Delivered: 2, Error: "store: closed"}}
	addr := serveAdmin(t, "", fake)
	cfg := writeCLIConfig(t, t.TempDir(), "router.hcl", cliConfig{adminAddr: addr})
	res := runCLI(t, "replay", "-c", cfg)
	if res.code != exitFail || !strings.HasPrefix(res.stdout, "replayed 2 events\n") || !strings.Contains(res.stderr, "failed: store: closed") {
		t.Errorf("exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
}
