package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// cliBase is cliBrokerBlocks with a second target, for the splitter.
const cliBase = cliBrokerBlocks + `target "items" {
  cluster  = "main"
  exchange = "items"
}
`

// pathPos is the LINE:COL of the value of the path attribute that names path in src.
func pathPos(t *testing.T, src, path string) string {
	t.Helper()
	attr := "path = " + hclString(path)
	i := strings.Index(src, attr)
	if i < 0 {
		t.Fatalf("no %s in the config", attr)
	}
	lineStart := strings.LastIndex(src[:i], "\n") + 1
	line := strings.Count(src[:i], "\n") + 1
	return fmt.Sprintf("%d:%d", line, i+len("path = ")-lineStart+1)
}

// diagnosticLine is one validate diagnostic: FILE:LINE:COL: error: MESSAGE.
var diagnosticLine = regexp.MustCompile(`^([^:]+):(\d+):(\d+): error: (.+)$`)

// checkShortDiagnostics parses stderr as diagnostics about file, one a line, and fails on
// anything that looks like a stack trace; it returns the messages by LINE:COL.
func checkShortDiagnostics(t *testing.T, file, stderr string) map[string]string {
	t.Helper()
	for _, trace := range []string{"goroutine ", ".go:", "wasm stack trace", "\n\t", "panic"} {
		if strings.Contains(stderr, trace) {
			t.Errorf("validate output holds %q, a stack trace or panic:\n%s", trace, stderr)
		}
	}
	at := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		m := diagnosticLine.FindStringSubmatch(line)
		if m == nil || m[1] != file {
			t.Errorf("stderr line is not a %s:LINE:COL: error: diagnostic: %q", file, line)
			continue
		}
		if len(line) > 300 {
			t.Errorf("diagnostic of %d bytes, want one short line: %q", len(line), line)
		}
		at[m[2]+":"+m[3]] = m[4]
	}
	return at
}

// TestValidateWasmModules: `router validate` reports a module lacking the entry point of its
// role, a module file that does not exist and a guest whose start-up fails, each as one short
// diagnostic at the module's path attribute, and exits 1; with the roles right it prints ok.
func TestValidateWasmModules(t *testing.T) {
	dir := wasmDir(t)
	threshold, redact, splitter := wasmGoGuest(t, "threshold"), wasmGoGuest(t, "redact"), wasmGoGuest(t, "splitter")
	keyfilter := wasmRepoFile(t, "examples/wasm/keyfilter/keyfilter.wasm")
	missing := filepath.Join(dir, "no-such-guest.wasm")
	eu := map[string]string{"header": "region", "value": "eu"}
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	good := cliBase + wasmModule("kf", keyfilter, eu) +
		wasmModule("red", redact, map[string]string{"fields": "email"}) +
		wasmModule("split", splitter, map[string]string{"target": "items"}) + `
route "r" {
  source     = "in"
  filters    = ["kf"]
  transforms = ["red"]
  handler    = "split"
  targets    = ["out"]
}
`
	write("good.hcl", good)
	code, stdout, stderr := runCLI(t, dir, "validate", "-c", "good.hcl")
	if code != 0 || !strings.HasPrefix(stdout, "ok\n") || !strings.Contains(stdout, "3 modules") {
		t.Fatalf("validate good.hcl: exit %d, stdout %q, stderr %q; want 0, ok and a summary", code, stdout, stderr)
	}

	bad := cliBase + wasmModule("kf", keyfilter, eu) +
		wasmModule("th", threshold, map[string]string{"min": "1"}) +
		wasmModule("gone", missing, nil) + `
route "r" {
  source     = "in"
  filters    = ["gone"]
  transforms = ["kf"]
  handler    = "th"
  targets    = ["out"]
}
`
	write("roles.hcl", bad)
	code, stdout, stderr = runCLI(t, dir, "validate", "-c", "roles.hcl")
	if code != 1 || strings.Contains(stdout, "ok") {
		t.Fatalf("validate roles.hcl: exit %d, stdout %q; want 1 and no ok\nstderr: %s", code, stdout, stderr)
	}
	at := checkShortDiagnostics(t, "roles.hcl", stderr)
	want := map[string][]string{
		pathPos(t, bad, keyfilter): {`"kf"`, `missing export "wr_transform"`, "transform"},
		pathPos(t, bad, threshold): {`"th"`, `missing export "wr_handle"`, "handler"},
		pathPos(t, bad, missing):   {`"gone"`, missing, "no such file"},
	}
	checkDiagnosticsAt(t, "roles.hcl", stderr, at, want)

	// keyfilter without its config traps in _initialize: the reason, without wazero's trace.
	noConfig := cliBase + wasmModule("kf", keyfilter, nil) + `
route "r" {
  source  = "in"
  filters = ["kf"]
  targets = ["out"]
}
`
	write("init.hcl", noConfig)
	code, stdout, stderr = runCLI(t, dir, "validate", "-c", "init.hcl")
	if code != 1 || strings.Contains(stdout, "ok") {
		t.Fatalf("validate init.hcl: exit %d, stdout %q; want 1\nstderr: %s", code, stdout, stderr)
	}
	at = checkShortDiagnostics(t, "init.hcl", stderr)
	checkDiagnosticsAt(t, "init.hcl", stderr, at, map[string][]string{
		pathPos(t, noConfig, keyfilter): {`"kf"`, `config needs "header" and "value", or "prefix"`},
	})
}

// checkDiagnosticsAt checks that there is exactly one diagnostic at each position of want, and
// that it says each of the texts listed.
func checkDiagnosticsAt(t *testing.T, file, stderr string, at map[string]string, want map[string][]string) {
	t.Helper()
	if len(at) != len(want) {
		t.Errorf("%s: %d diagnostics, want %d:\n%s", file, len(at), len(want), stderr)
	}
	for pos, texts := range want {
		msg, ok := at[pos]
		if !ok {
			t.Errorf("%s: no diagnostic at %s:%s; stderr:\n%s", file, file, pos, stderr)
			continue
		}
		for _, s := range texts {
			if !strings.Contains(msg, s) {
				t.Errorf("%s:%s: %q does not say %q", file, pos, msg, s)
			}
		}
	}
}
