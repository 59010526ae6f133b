package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// binDir holds the router binary, built once, on first use, for the tests that run it as a
// process (the in-process tests do not need it).
var (
	binDir    string
	buildOnce sync.Once
	routerBin string
	buildErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if testing.Short() {
		return m.Run()
	}
	var err error
	if binDir, err = os.MkdirTemp("", "wasmrouter-e2e-bin"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	return m.Run()
}

// routerBinary returns the path of the router binary, building it on first use.
func routerBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the router binary and a broker (skipped with -short)")
	}
	buildOnce.Do(func() {
		routerBin = filepath.Join(binDir, "router")
		buildErr = buildRouter(routerBin)
	})
	if buildErr != nil {
		t.Fatalf("building the router binary: %v", buildErr)
	}
	return routerBin
}

// buildRouter builds cmd/router from the module root, with the race detector when the tests
// have it, so that races in the process also fail the tests.
func buildRouter(out string) error {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/router")...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w\n%s", err, b)
	}
	return nil
}
