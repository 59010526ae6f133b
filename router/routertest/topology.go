package routertest

import (
	"path/filepath"
	"testing"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
)

// Topology compiles src, a configuration in HCL that reads no environment, into the topology
// an engine under test runs.
func Topology(t testing.TB, src string) *router.Topology {
	t.Helper()
	cfg, diags := config.LoadBytes([]byte(src), filepath.Join(t.TempDir(), "router.hcl"), func(string) (string, bool) { return "", false })
	if diags.HasErrors() {
		t.Fatalf("config: %s", diags.Error())
	}
	topo, err := router.NewTopology(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}
