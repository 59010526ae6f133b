package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var roles = []string{"filter", "transform", "handler"}

// newScaffold runs `router guest new` into a fresh directory and returns it.
func newScaffold(t *testing.T, lang, name, role string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	var stdout, stderr bytes.Buffer
	if code := cmdGuestNew(context.Background(), []string{lang, name, "--role", role, dir}, &stdout, &stderr); code != exitOK {
		t.Fatalf("guest new %s %s --role %s: exit %d\n%s%s", lang, name, role, code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "make && make test") {
		t.Errorf("guest new does not say how to build and test:\n%s", stdout.String())
	}
	return dir
}

// goEnv builds a scaffold outside this module with no proxy and no workspace, so that it must
// stand alone, with the go command of the running toolchain first on PATH.
func goEnv() []string {
	return []string{"GOPROXY=off", "GOFLAGS=", "GOWORK=off", "PATH=" + filepath.Dir(goBinary()) + ":" + os.Getenv("PATH")}
}

// runIn runs a command in dir, failing the test with its output when it fails.
func runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// testScaffold runs the scaffold's router.hcl test blocks, which must all pass.
func testScaffold(t *testing.T, dir string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cmdTest(context.Background(), []string{"-c", filepath.Join(dir, "router.hcl")}, &stdout, &stderr)
	if code != exitOK || !strings.Contains(stdout.String(), " 0 failed") || strings.Contains(stdout.String(), "FAIL") {
		t.Errorf("router test on the scaffold: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// TestGuestNewGo: each Go scaffold builds outside this repository with no module download (the
// SDK is written next to it), vets on the host and for wasip1, passes its unit tests on the
// host's stand-in and its test blocks through the built guest.
func TestGuestNewGo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds guests (skipped with -short)")
	}
	for _, role := range roles {
		t.Run(role, func(t *testing.T) {
			dir := newScaffold(t, "go", "g_"+role, role)
			// Outside this module, with no proxy and no workspace: the scaffold stands alone.
			env := goEnv()
			runIn(t, dir, env, "make")
			runIn(t, dir, env, goBinary(), "vet", "./...")
			runIn(t, dir, append(env, "GOOS=wasip1", "GOARCH=wasm"), goBinary(), "vet", "./...")
			if out := runIn(t, dir, env, goBinary(), "test", "./..."); !strings.Contains(out, "ok ") {
				t.Errorf("go test ran no tests:\n%s", out)
			}
			testScaffold(t, dir)
		})
	}
}

// TestGuestNewC: each C scaffold builds with clang and wasi-libc and passes its test blocks.
func TestGuestNewC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds guests (skipped with -short)")
	}
	if probe := exec.Command("clang", "--target=wasm32-wasi", "-fsyntax-only", "-x", "c", "-"); func() bool {
		probe.Stdin = strings.NewReader("#include <stdlib.h>\n")
		return probe.Run() != nil
	}() {
		t.Skip("clang with a wasm32-wasi sysroot is not installed (scripts/setup.sh installs clang, lld, wasi-libc)")
	}
	for _, role := range roles {
		t.Run(role, func(t *testing.T) {
			dir := newScaffold(t, "c", "c_"+role, role)
			runIn(t, dir, nil, "make")
			testScaffold(t, dir)
		})
	}
}

// TestGuestNewAssemblyScript: each AssemblyScript scaffold installs its compiler from npm,
// builds and passes its test blocks. It is skipped only when npm cannot reach its registry.
func TestGuestNewAssemblyScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds guests (skipped with -short)")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not installed (scripts/setup.sh installs it): the AssemblyScript scaffold cannot be built")
	}
	var modules string // node_modules of the first scaffold, shared by the others
	for _, role := range roles {
		t.Run(role, func(t *testing.T) {
			dir := newScaffold(t, "as", "as_"+role, role)
			if modules == "" {
				cmd := exec.Command("npm", "install", "--no-audit", "--no-fund")
				cmd.Dir = dir
				if out, err := cmd.CombinedOutput(); err != nil {
					if bytes.Contains(out, []byte("ENOTFOUND")) || bytes.Contains(out, []byte("ECONNREFUSED")) ||
						bytes.Contains(out, []byte("ETIMEDOUT")) || bytes.Contains(out, []byte("EAI_AGAIN")) {
						t.Skipf("npm cannot reach its registry, so the AssemblyScript compiler cannot be installed:\n%s", out)
					}
					t.Fatalf("npm install: %v\n%s", err, out)
				}
				modules = filepath.Join(dir, "node_modules")
			} else if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
				t.Fatal(err)
			}
			runIn(t, dir, nil, "make")
			testScaffold(t, dir)
		})
	}
}

func TestGuestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"rust", "x"}, exitUsage, `unknown language "rust"`},
		{[]string{"go", "9lives"}, exitUsage, "must start with a letter"},
		{[]string{"go", "x", "--role", "router"}, exitUsage, "--role must be filter, transform or handler"},
		{[]string{"c", "x", dir}, exitFail, "is not empty"},
	} {
		var stdout, stderr bytes.Buffer
		code := cmdGuestNew(context.Background(), c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("guest new %v: exit %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.want)
		}
	}
}

// guestRun runs `router guest run` with the event in a file, and the compilation cache in the
// test binary's shared directory.
func guestRun(t *testing.T, event string, args ...string) (int, string, string) {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(goGuestsDir, "user-cache"))
	f := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(f, []byte(event), 0o644); err != nil {
		t.Fatal(err)
	}
	// The default --timeout (the router's per-call limit, 1s) is wall time: on a loaded machine
	// under the race detector a Go guest's call (the out of memory case allocates 16 MiB) can
	// pass it and report a timeout instead of what the case checks. Only the timeout case sets
	// its own.
	if !slices.Contains(args, "--timeout") {
		args = append(args, "--timeout", "2m")
	}
	var stdout, stderr bytes.Buffer
	code := cmdGuestRun(context.Background(), append(args, "--event", f), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestGuestRunExamples: `router guest run` on each example guest prints the verdict, the
// changes and the emitted events.
func TestGuestRunExamples(t *testing.T) {
	order := `{"routing_key":"order.created","headers":{"tenant":"acme"},"body":{"amount":500,"customer":{"email":"a@b.c"},"items":[{"sku":"A"},{"sku":"B"}]}}`
	for _, c := range []struct {
		name  string
		args  []string
		event string
		code  int
		want  []string
	}{
		{"threshold keeps", []string{goGuestPath(t, "threshold"), "--role", "filter", "--config", "min=100"}, order, exitOK,
			[]string{"verdict: continue\n"}},
		{"threshold drops", []string{goGuestPath(t, "threshold"), "--role", "filter", "--config", "min=1000"}, order, exitOK,
			[]string{"verdict: drop\n"}},
		{"redact", []string{goGuestPath(t, "redact"), "--role", "transform", "--config", "fields=customer.email"}, order, exitOK,
			[]string{"verdict: continue\n", `body: {"amount":500,"customer":{"email":"***"}`, "header x-redacted: 1\n"}},
		{"splitter", []string{goGuestPath(t, "splitter"), "--role", "handler", "--config", "target=items"}, order, exitOK,
			[]string{"emitted[0]: target=items routing_key=order.created.item body={\"sku\":\"A\"}\n",
				"emitted[1]: target=items routing_key=order.created.item body={\"sku\":\"B\"}\n"}},
		{"keyfilter", []string{repoFile(t, "examples/wasm/keyfilter/keyfilter.wasm"), "--role", "filter", "--config", "header=tenant",
			"--config", "value=acme"}, order, exitOK, []string{"verdict: continue\n"}},
		{"stamp", []string{repoFile(t, "examples/wasm/stamp/stamp.wasm"), "--role", "transform", "--config", "prefix=eu."}, order, exitOK,
			[]string{`routing_key: "order.created" -> "eu.order.created"`, "header x-stamped-by: wasmrouter\n"}},
		{"emit with headers", []string{goGuestPath(t, "conformance"), "--role", "handler"},
			`{"headers":{"op":"emith","copy":"1","n":7},"body":"x"}`, exitOK,
			[]string{`emitted[0]: target=out routing_key=k headers={"copy":"1","n":7,"op":"emith","x-e":"v"} body="x"`}},
		{"guest log lines", []string{goGuestPath(t, "conformance"), "--role", "filter"},
			`{"headers":{"op":"log","level":"1","msg":"hello there"},"body":"{}"}`, exitOK,
			[]string{`log: INFO hello there stream="log"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := guestRun(t, c.event, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d\n%s%s", code, c.code, stdout, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("want %q in\n%s%s", w, stdout, stderr)
				}
			}
		})
	}
}

// TestGuestRunMistakes: the mistakes guest authors make get messages that say how to fix them.
func TestGuestRunMistakes(t *testing.T) {
	noExport := newScaffold(t, "go", "noexport", "filter")
	main := filepath.Join(noExport, "main.go")
	src, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	// Forgetting //go:wasmexport leaves a module without its entry point.
	if err := os.WriteFile(main, bytes.Replace(src, []byte("//go:wasmexport wr_filter\n"), nil, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	runIn(t, noExport, goEnv(), "make")
	event := `{"routing_key":"k","body":{}}`
	for _, c := range []struct {
		name  string
		args  []string
		event string
		where string // "stdout" or "stderr"
		want  []string
	}{
		{"forgot go:wasmexport", []string{filepath.Join(noExport, "noexport.wasm"), "--role", "filter"}, event, "stderr",
			[]string{`missing export "wr_filter"`, "//go:wasmexport wr_filter", "WR_EXPORT(wr_filter)", "export function wr_filter"}},
		{"a transform run as a filter", []string{repoFile(t, "examples/wasm/stamp/stamp.wasm"), "--role", "filter"}, event, "stderr",
			[]string{`missing export "wr_filter"`, "exports only wr_transform", "list it under a route's transforms"}},
		{"C without WASMROUTER_IMPLEMENTATION", []string{repoFile(t, "wasmhost/testdata/c/bad_nomarker.wasm"), "--role", "filter"}, event,
			"stderr", []string{`missing export "wr_abi_v1"`, "#define WASMROUTER_IMPLEMENTATION"}},
		{"a command, not a reactor", []string{repoFile(t, "wasmhost/testdata/c/command.wasm"), "--role", "filter"}, event, "stderr",
			[]string{"build a reactor", "-buildmode=c-shared", "-mexec-model=reactor"}},
		{"no such file", []string{filepath.Join(t.TempDir(), "missing.wasm"), "--role", "filter"}, event, "stderr",
			[]string{"build the guest first"}},
		{"Go panic", []string{goGuestPath(t, "conformance"), "--role", "filter"}, `{"headers":{"op":"panic","msg":"no amount"},"body":"{}"}`,
			"stdout", []string{"verdict: retry\n", "reason: panic: conformance: no amount (trap: ", "guest call failed", "goroutine "}},
		{"out of memory", []string{goGuestPath(t, "conformance"), "--role", "filter", "--max-memory", "16777216"},
			`{"headers":{"op":"oom"},"body":"{}"}`, "stdout", []string{"verdict: retry\n", `max_memory = "16MiB"`, "raise max_memory"}},
		{"error_set", []string{goGuestPath(t, "conformance"), "--role", "filter"}, `{"headers":{"op":"error","reason":"no amount","code":"3"},"body":"{}"}`,
			"stdout", []string{"verdict: dead_letter\n", "reason: no amount\n"}},
		{"timeout", []string{repoFile(t, "wasmhost/testdata/c/hostile.wasm"), "--role", "filter", "--timeout", "100ms"},
			`{"headers":{"op":"loop"},"body":"{}"}`, "stdout", []string{"verdict: retry\n", "reason: timeout after 100ms"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := guestRun(t, c.event, c.args...)
			if code != exitFail {
				t.Errorf("exit %d, want %d", code, exitFail)
			}
			out := stdout
			if c.where == "stderr" {
				out = stderr
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("want %q in the %s:\n%s", w, c.where, out)
				}
			}
		})
	}
}
