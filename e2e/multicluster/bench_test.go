package multicluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// Benchmarks of the several-clusters set-up. They take minutes and load the machine, so they
// run only with WASMROUTER_BENCH=1 (and without -race, for figures worth reporting):
//
//	WASMROUTER_BENCH=1 go test -count=1 -v -run Bench -timeout 30m ./e2e/multicluster/
func benchOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("WASMROUTER_BENCH") != "1" {
		t.Skip("benchmark: set WASMROUTER_BENCH=1 to run")
	}
	rabbit.SkipIfShort(t)
	if raceEnabled {
		t.Log("warning: built with -race; the figures are not representative")
	}
}

// benchInt reads a positive integer from the environment, or def.
func benchInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestBenchAllModeThroughput runs the bench harness (bench/cmd/e2e) with the one-route router
// against the same router whose target is on two clusters in mode "all" (the second one being
// the test's RabbitMQ node), in one session, alternating rounds.
func TestBenchAllModeThroughput(t *testing.T) {
	benchOnly(t)
	node := second.Node(t)
	bin := t.TempDir()
	root := moduleRoot(t)
	for pkg, out := range map[string]string{"./cmd/router": "router", "./bench/cmd/e2e": "bench-e2e"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, out), pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	args := []string{
		"-sides", "router,router-all", "-dr-url", node.URL(), "-router", filepath.Join(bin, "router"),
		"-n", strconv.Itoa(benchInt("WASMROUTER_BENCH_N", 50000)),
		"-rounds", strconv.Itoa(benchInt("WASMROUTER_BENCH_ROUNDS", 3)),
		"-latency-duration", "10s", "-retries", "1", "-workdir", t.TempDir(),
	}
	cmd := exec.Command(filepath.Join(bin, "bench-e2e"), args...)
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("bench-e2e %s\n%s\nprogress:\n%s", strings.Join(args, " "), out, stderr.String())
	if err != nil {
		t.Fatalf("bench-e2e: %v", err)
	}
}

// TestBenchAllModeCatchUp measures how fast a cluster of an "all" target catches up on a
// backlog: n messages flow while it is cut off (the other cluster gets them meanwhile), then
// its network comes back and the test times the drain.
func TestBenchAllModeCatchUp(t *testing.T) {
	benchOnly(t)
	n := benchInt("WASMROUTER_BENCH_BACKLOG", 50000)
	setup := newAllModeSetup(t, "mc.bench")
	primary := newCountingSink(t, "primary", setup.mainURL, setup.out)
	dr := newCountingSink(t, "dr", setup.drURL, setup.out)
	r := setup.startRouter(t)

	setup.drProxy.Cut()
	r.waitCluster(t, "dr", false, 10*time.Second)
	f := newFeeder(t, setup.mainURL, setup.in, "bench")
	start := time.Now()
	f.publish(n)
	published := time.Since(start)
	waitCount(t, primary, n)
	primaryDone := time.Since(start)
	primary.waitAll(t, f, 1, n, time.Minute)
	if got := dr.total(); got != 0 {
		t.Fatalf("dr received %d messages while cut off", got)
	}

	restored := time.Now()
	setup.drProxy.Restore()
	r.waitCluster(t, "dr", true, 60*time.Second)
	reconnected := time.Now()
	waitCount(t, dr, n)
	drained := time.Since(reconnected)
	dr.waitAll(t, f, 1, n, time.Minute)
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	t.Logf("backlog %d messages: published in %s (%.0f msg/s); primary had them all %s after the first publish (%.0f msg/s)",
		n, published.Round(time.Millisecond), rate(published), primaryDone.Round(time.Millisecond), rate(primaryDone))
	t.Logf("dr: reconnected %s after the network came back; backlog drained in %s: %.0f msg/s",
		reconnected.Sub(restored).Round(time.Millisecond), drained.Round(time.Millisecond), rate(drained))
	t.Logf("duplicates: primary %d, dr %d", primary.total()-n, dr.total()-n)
}

// waitCount waits until s received n messages, duplicates included: a cheap poll that leaves
// the machine to the router.
func waitCount(t *testing.T, s *sink, n int) {
	t.Helper()
	waitFor(t, 10*time.Minute, func() bool { return s.total() >= n }, func() string {
		return s.name + ": " + strconv.Itoa(s.total()) + " messages of " + strconv.Itoa(n)
	})
}

// moduleRoot is the directory of the module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}
