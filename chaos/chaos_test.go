package main

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/config"
)

// TestShortProfile runs the quick profile of every scenario that leaves other users of the
// broker alone (no broker restart, only this run's connections closed), against the router
// binary built from this tree. It takes about three minutes, so -short skips it.
func TestShortProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the router binary against RabbitMQ for minutes (skipped with -short)")
	}
	bin := buildRouter(t)
	guest, err := filepath.Abs("../wasmhost/testdata/c/hostile.wasm")
	if err != nil {
		t.Fatal(err)
	}
	o := &options{
		routerBin: bin, amqpURL: defaultURL(), duration: 10 * time.Second, drainTimeout: 60 * time.Second,
		rate: 400, seed: 1, short: true, fastP99: 2 * time.Second, guest: guest, workDir: t.TempDir(),
		diskReadiness: true,
	}
	byName := map[string]*scenario{}
	for _, sc := range scenarios() {
		byName[sc.name] = sc
	}
	for i, name := range []string{"kill", "connclose", "target", "disk", "slow", "poison"} {
		t.Run(name, func(t *testing.T) {
			r := runScenario(context.Background(), o, byName[name], rand.New(rand.NewPCG(1, uint64(i))))
			var b strings.Builder
			r.writeText(&b)
			t.Log("\n" + b.String())
			if r.Skipped != "" {
				// CI runs as root, where every scenario can run: a skip there would pass a
				// guarantee nobody checked.
				if os.Geteuid() == 0 {
					t.Fatalf("scenario %s skipped as root: %s", name, r.Skipped)
				}
				t.Skip(r.Skipped)
			}
			if !r.Passed() {
				t.Errorf("scenario %s failed: lost %d, misplaced %d, header mismatches %d, violations %v, error %q",
					name, r.Lost, r.Misplaced, r.Mismatches, r.Violations, r.Error)
			}
		})
	}
}

// buildRouter builds cmd/router into the test's temp dir.
func buildRouter(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "router")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/router")
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the router: %v\n%s", err, b)
	}
	return out
}

// The routers scenario's configurations are ones the router accepts: the log on the stream,
// router i reaching the log's cluster through node i.
func TestRoutersConfigLoads(t *testing.T) {
	w, err := newWorld(&options{amqpURL: "amqp://guest:guest@127.0.0.1:5672/", workDir: t.TempDir()}, "routers")
	if err != nil {
		t.Fatal(err)
	}
	nodes := []string{"amqp://guest:guest@127.0.0.1:5701/", "amqp://guest:guest@127.0.0.1:5702/"}
	w.streamLog = &streamLogSpec{urls: nodes, stream: "chaos.routers.x", takeover: "5s"}
	w.sinks = []sinkSpec{{name: "a"}, {name: "b"}}
	for _, s := range w.sinks {
		w.sinkX[s.name] = "chaos.x." + s.name
	}
	for i := range 3 {
		src := w.config(i, "127.0.0.1:19999")
		cfg, diags := config.LoadBytes([]byte(src), filepath.Join(w.dir, "router.hcl"), nil)
		if diags.HasErrors() {
			t.Fatalf("router %d: %s\n%s", i+1, diags.Error(), src)
		}
		if cfg.Store.Backend != config.BackendStream || cfg.Store.Stream != "chaos.routers.x" || cfg.Store.Takeover != 5*time.Second {
			t.Errorf("router %d: store %+v", i+1, cfg.Store)
		}
		var url string
		for _, c := range cfg.Clusters {
			if c.Name == cfg.Store.Cluster {
				url = c.URL
			}
		}
		if url != nodes[i%len(nodes)] {
			t.Errorf("router %d reaches the log through %q, want %q", i+1, url, nodes[i%len(nodes)])
		}
	}
}
