package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testBlocksConfig routes "c.*" through the C hostile guest, "g.*" through the Go conformance
// guest and "split.*" through the splitter handler. Timeouts are wall time: the hostile
// guest's leaves its trapping and code-3 calls a wide margin on a loaded machine under -race
// (only the loop should reach it), and the Go guests get one that no call but a hung one
// reaches.
const testBlocksConfig = `
store { path = %q }
cluster "main" { url = "amqp://guest:guest@127.0.0.1:1/" }
source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q"
}
target "out" {
  cluster  = "main"
  exchange = "out"
}
target "items" {
  cluster  = "main"
  exchange = "items"
}
module "hostile" {
  path    = %q
  timeout = "1s"
}
module "conformance" {
  path    = %q
  timeout = "1m"
  config  = { init = "x" }
}
module "splitter" {
  path    = %q
  timeout = "1m"
  config  = { target = "items" }
}
route "c" {
  source  = "in"
  match   = ["c.*"]
  filters = ["hostile"]
  targets = ["out"]
}
route "g" {
  source  = "in"
  match   = ["g.*"]
  filters = ["conformance"]
  targets = ["out"]
}
route "split" {
  source  = "in"
  match   = ["split.*"]
  handler = "splitter"
  targets = ["out"]
}
`

// failing is one way a guest fails, with the route and headers that make it fail that way and
// a substring of the reason.
type failing struct{ name, key, headers, reason string }

var failings = []failing{
	{"trap", "c.x", `{ op = "trap" }`, "trap:"},
	{"loop", "c.x", `{ op = "loop" }`, "timeout after 1s"},
	{"code 3", "c.x", `{ op = "code", code = "3" }`, "dead-letter requested by module"},
	{"panic", "g.x", `{ op = "panic", msg = "no amount" }`, "panic: conformance: no amount"},
}

func testBlock(name, key, headers, body, expect string) string {
	return fmt.Sprintf(`
test %q {
  input {
    source      = "in"
    routing_key = %q
    headers     = %s
    body        = %q
  }
  expect {
%s
  }
}
`, name, key, headers, body, expect)
}

func runTestCommand(t *testing.T, src string, args ...string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	goGuestPath(t, "conformance") // builds the guests, and makes goGuestsDir
	// The store's directory holds wasm-cache: one compilation cache for every run of the test
	// binary, so each module compiles once (router test never opens the store itself).
	cfg := fmt.Sprintf(testBlocksConfig, filepath.Join(goGuestsDir, "store", "router.db"), repoFile(t, "wasmhost/testdata/c/hostile.wasm"),
		goGuestPath(t, "conformance"), goGuestPath(t, "splitter")) + src
	if err := os.WriteFile(filepath.Join(dir, "router.hcl"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	code := cmdTest(context.Background(), append([]string{"-c", filepath.Join(dir, "router.hcl")}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestFailuresNeverPassAsDrops: a trapping, looping, panicking or code-3 guest fails a test
// that expects no targets or a drop, and passes one that expects a dead letter with its reason.
func TestFailuresNeverPassAsDrops(t *testing.T) {
	var src strings.Builder
	for _, f := range failings {
		src.WriteString(testBlock(f.name+" no targets", f.key, f.headers, "{}", `    targets = []`))
		src.WriteString(testBlock(f.name+" drop", f.key, f.headers, "{}", `    verdict = "drop"`))
		src.WriteString(testBlock(f.name+" dead letter", f.key, f.headers, "{}",
			fmt.Sprintf("    verdict = \"dead_letter\"\n    reason = %q", f.reason)))
		src.WriteString(testBlock(f.name+" wrong reason", f.key, f.headers, "{}", `    reason = "not the reason"`))
	}
	code, stdout, stderr := runTestCommand(t, src.String())
	if code != exitFail {
		t.Errorf("exit %d, want %d", code, exitFail)
	}
	for _, f := range failings {
		for _, c := range []struct{ suffix, want string }{
			{" no targets", "FAIL"}, {" drop", "FAIL"}, {" dead letter", "PASS"}, {" wrong reason", "FAIL"},
		} {
			if line := c.want + " " + f.name + c.suffix; !strings.Contains(stdout, line+"\n") && !strings.Contains(stdout, line+" (") {
				t.Errorf("want %q in the output", line)
			}
		}
	}
	if !strings.Contains(stdout, fmt.Sprintf("tests: %d passed, %d failed", len(failings), 3*len(failings))) {
		t.Errorf("summary missing or wrong")
	}
	// A failing test of the panicking guest shows the guest's failure record, its stack folded.
	if !strings.Contains(stdout, "guest call failed") || !strings.Contains(stdout, "goroutine") {
		t.Errorf("the failing panic tests do not show the guest's log")
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}

// TestEmittedAndJSONBodies: emitted events are checked in order, bodies compared as JSON, and
// the guest's log lines show under a failing test at the chosen level.
func TestEmittedAndJSONBodies(t *testing.T) {
	body := `{"items":[{"sku":"A1","n":1},{"sku":"B2","n":2}]}`
	src := testBlock("in order", "split.x", "{}", body, `
    verdict = "deliver"
    targets = ["items", "out"]
    body    = "{ \"items\": [ {\"n\": 1.0, \"sku\": \"A1\"}, {\"sku\": \"B2\", \"n\": 2} ] }"
    emitted = [
      { target = "items", routing_key = "split.x.item", body = "{ \"sku\": \"A1\", \"n\": 1 }" },
      { target = "items", body = jsonencode({ sku = "B2", n = 2 }), headers = { "x-router-route" = "split" } },
    ]`) +
		testBlock("out of order", "split.x", "{}", body, `
    emitted = [
      { target = "items", body = jsonencode({ sku = "B2", n = 2 }) },
      { target = "items", body = jsonencode({ sku = "A1", n = 1 }) },
    ]`) +
		testBlock("too few", "split.x", "{}", body, `
    emitted = [{ target = "items" }]`) +
		testBlock("logs", "g.x", `{ op = "log", level = "1", msg = "hello from the guest" }`, "{}", `
    verdict = "drop"`)
	code, stdout, stderr := runTestCommand(t, src, "--log-level", "info")
	for _, want := range []string{
		"PASS in order\n",
		"FAIL out of order",
		`emitted[0] body: want "{\"n\":2,\"sku\":\"B2\"}", got "{\"sku\":\"A1\",\"n\":1}"`,
		"FAIL too few",
		"emitted: want 1 events, got 2",
		"FAIL logs",
		"verdict: want drop, got deliver",
		"hello from the guest",
		"tests: 1 passed, 3 failed",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("want %q in the output", want)
		}
	}
	if code != exitFail {
		t.Errorf("exit %d, want %d", code, exitFail)
	}
	// At warn, the guest's info line is not shown.
	_, stdout2, _ := runTestCommand(t, testBlock("logs", "g.x", `{ op = "log", level = "1", msg = "hello from the guest" }`, "{}", `
    verdict = "drop"`), "--log-level", "warn")
	if strings.Contains(stdout2, "hello from the guest") {
		t.Errorf("--log-level warn shows an info line:\n%s", stdout2)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}
