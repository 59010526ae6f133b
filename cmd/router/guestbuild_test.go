package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if goGuestsDir != "" {
		os.RemoveAll(goGuestsDir)
	}
	os.Exit(code)
}

// Go guests the command tests run, built once per test binary into a shared directory.
var (
	goGuestsOnce sync.Once
	goGuestsDir  string
	goGuestsErr  error
)

// testGoGuests maps a guest name to its package, relative to the module root.
var testGoGuests = map[string]string{
	"conformance": "wasmhost/testdata/go/conformance",
	"splitter":    "examples/wasm/splitter",
	"threshold":   "examples/wasm/threshold",
	"redact":      "examples/wasm/redact",
}

// goGuestPath returns the built Go guest name.
func goGuestPath(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds Go guests (skipped with -short)")
	}
	goGuestsOnce.Do(func() { goGuestsDir, goGuestsErr = buildTestGoGuests() })
	if goGuestsErr != nil {
		t.Fatalf("building the Go test guests: %v", goGuestsErr)
	}
	return filepath.Join(goGuestsDir, name+".wasm")
}

func goBinary() string {
	if b := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(b) {
		return b
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func buildTestGoGuests() (string, error) {
	dir, err := os.MkdirTemp("", "router-cmd-guests-")
	if err != nil {
		return "", err
	}
	errs := make(chan error, len(testGoGuests))
	for name, pkg := range testGoGuests {
		go func() {
			cmd := exec.Command(goBinary(), "build", "-buildmode=c-shared", "-trimpath", "-o", filepath.Join(dir, name+".wasm"), "./"+pkg)
			cmd.Dir = filepath.Join("..", "..")
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=")
			if b, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("%s: %v\n%s", pkg, err, b)
				return
			}
			errs <- nil
		}()
	}
	for range testGoGuests {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	return dir, err
}

// repoFile is the absolute path of a file of the repository.
func repoFile(t testing.TB, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
