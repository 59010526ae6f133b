package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runCLI runs the router binary with args in dir and returns its exit status and output.
func runCLI(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(routerBinary(t), args...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		t.Fatalf("running router %s: %v", strings.Join(args, " "), err)
	}
	return code, out.String(), errOut.String()
}

// cliBrokerBlocks is a config's broker part for the CLI tests; nothing connects to it.
const cliBrokerBlocks = `cluster "main" {
  url = "amqp://guest:guest@127.0.0.1:5672/"
}
source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "router.events"
}
target "out" {
  cluster  = "main"
  exchange = "out"
}
`

const goodConfig = cliBrokerBlocks + `route "all" {
  source  = "in"
  targets = ["out"]
}
`

// badConfig has three mistakes, at known places: a target that does not exist (line 15,
// column 14), a duration that does not parse (line 17, column 15) and a duplicate target
// name (line 20, column 8); cliBrokerBlocks is lines 1 to 12.
const badConfig = cliBrokerBlocks + `route "all" {
  source  = "in"
  targets = ["nope"]
  retry {
    backoff = "soon"
  }
}
target "out" {
  cluster  = "main"
  exchange = "out2"
}
`

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{"good.hcl": goodConfig, "bad.hcl": badConfig} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("validate ok", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, dir, "validate", "-c", "good.hcl")
		if code != 0 || strings.TrimSpace(strings.SplitN(stdout, "\n", 2)[0]) != "ok" {
			t.Fatalf("validate on a good config: exit %d, stdout %q, stderr %q; want exit 0 and ok", code, stdout, stderr)
		}
	})

	t.Run("validate diagnostics", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, dir, "validate", "-c", "bad.hcl")
		if code != 1 {
			t.Fatalf("validate on a bad config: exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		diag := regexp.MustCompile(`^bad\.hcl:(\d+):(\d+): error: \S`)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		at := map[string]bool{}
		for _, line := range lines {
			m := diag.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("stderr line is not a FILE:LINE:COL: error: diagnostic: %q", line)
				continue
			}
			at[m[1]+":"+m[2]] = true
		}
		if len(lines) != 3 {
			t.Errorf("%d diagnostics for 3 problems:\n%s", len(lines), stderr)
		}
		// One diagnostic per problem, at HCL's positions, naming the file as given.
		for _, pos := range []string{"15:14", "17:15", "20:8"} {
			if !at[pos] {
				t.Errorf("no diagnostic at bad.hcl:%s; stderr:\n%s", pos, stderr)
			}
		}
		if strings.Contains(stdout, "ok") {
			t.Errorf("validate printed %q on a bad config", stdout)
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{{"frobnicate"}, {}, {"validate", "--no-such-flag"}} {
			if code, _, stderr := runCLI(t, dir, args...); code != 2 {
				t.Errorf("router %s: exit %d, want 2 (usage error); stderr: %s", strings.Join(args, " "), code, stderr)
			}
		}
	})

	t.Run("help", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, dir, "--help")
		if code != 0 {
			t.Fatalf("router --help: exit %d, want 0; stderr: %s", code, stderr)
		}
		commands := listedCommands(stdout)
		for _, want := range []string{"run", "validate", "test", "version"} {
			if !commands[want] {
				t.Errorf("router --help does not list %q:\n%s", want, stdout)
			}
		}
		for cmd := range commands {
			code, stdout, stderr := runCLI(t, dir, cmd, "--help")
			if code != 0 || !strings.Contains(stdout+stderr, "Usage") {
				t.Errorf("router %s --help: exit %d, want 0 and a usage text; output: %s%s", cmd, code, stdout, stderr)
			}
		}
	})
}

// listedCommands reads the command names from `router --help`: the indented lines after
// "Commands:".
func listedCommands(help string) map[string]bool {
	out := map[string]bool{}
	_, list, ok := strings.Cut(help, "Commands:")
	if !ok {
		return out
	}
	for _, line := range strings.Split(list, "\n") {
		if !strings.HasPrefix(line, "  ") {
			if strings.TrimSpace(line) != "" {
				break
			}
			continue
		}
		if f := strings.Fields(line); len(f) > 0 {
			out[f[0]] = true
		}
	}
	return out
}
