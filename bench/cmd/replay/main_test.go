package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/bench"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

func TestSideRuns(t *testing.T) {
	o := options{n: 10, size: 100, window: 8, sides: "publish, publish-replayed,replay"}
	runs, err := sideRuns(o, "/self", "/router", "/c/router.hcl", "amqp://x", "ex")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 || runs[0].Side != "publish" || runs[1].Side != "publish-replayed" || runs[2].Side != "replay" {
		t.Fatalf("runs %+v", runs)
	}
	if a := strings.Join(runs[0].Args, " "); strings.Contains(a, "-as-replayed") {
		t.Errorf("the plain publisher publishes as replayed: %s", a)
	}
	if a := strings.Join(runs[1].Args, " "); !strings.HasSuffix(a, "-as-replayed") {
		t.Errorf("publish-replayed args: %s", a)
	}
	if runs[2].Bin != "/router" || strings.Join(runs[2].Args, " ") != "replay -c /c/router.hcl --route all" {
		t.Errorf("replay run: %s %v", runs[2].Bin, runs[2].Args)
	}
	wide, err := sideRuns(options{n: 10, size: 100, window: 8, sides: "publish,publish-window-4096"}, "/self", "/router", "/c/router.hcl", "amqp://x", "ex")
	if err != nil {
		t.Fatal(err)
	}
	if a := strings.Join(wide[1].Args, " "); wide[1].Side != "publish-window-4096" || !strings.HasSuffix(a, "-window 4096") || strings.Contains(a, "-window 8") {
		t.Errorf("publish-window-4096 run: %s %s", wide[1].Side, a)
	}
	for _, bad := range []string{"publish", "publish,shovel", "publish,publish-window-0"} {
		if _, err := sideRuns(options{sides: bad}, "", "", "", "", ""); err == nil {
			t.Errorf("sides %q accepted", bad)
		}
	}
}

// A whole small measurement against the broker: each run must deliver exactly n messages to
// the target queue (RunCommand checks), the replay included.
func TestMeasureSmall(t *testing.T) {
	rabbit.SkipIfShort(t)
	t.Setenv(bench.URLEnv, rabbit.URL())
	routerBin := filepath.Join(t.TempDir(), "router")
	if out, err := exec.Command("go", "build", "-o", routerBin, "../../../cmd/router").CombinedOutput(); err != nil {
		t.Fatalf("building the router: %v\n%s", err, out)
	}
	// The plain publisher is this program re-run: the test binary cannot be, so build it.
	self := filepath.Join(t.TempDir(), "bench-replay")
	if out, err := exec.Command("go", "build", "-o", self, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the benchmark: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, self, "-n", "500", "-rounds", "1", "-sides", "publish,publish-replayed,replay",
		"-router", routerBin, "-workdir", t.TempDir(), "-quiet-wait", "1s", "-timeout", "1m", "-log-stats", "1")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"BenchmarkReplay/side=publish-", "BenchmarkReplay/side=publish-replayed-", "BenchmarkReplay/side=replay-", "replay: rate ", "'router log stats' over 500 events"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
