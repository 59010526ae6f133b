package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	messyHCL     = "route \"r\" {\nsource=\"s\"   # kept\n  targets = [\"t\"]\n}\n"
	canonicalHCL = "route \"r\" {\n  source  = \"s\" # kept\n  targets = [\"t\"]\n}\n"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFmtCheckExitCodes(t *testing.T) {
	dir := t.TempDir()
	messy, clean := filepath.Join(dir, "messy.hcl"), filepath.Join(dir, "clean.hcl")
	writeFile(t, messy, messyHCL)
	writeFile(t, clean, canonicalHCL)

	res := runCLI(t, "fmt", "-check", clean)
	if res.code != exitOK || res.stdout != "" {
		t.Errorf("-check on a canonical file: exit %d, stdout %q", res.code, res.stdout)
	}
	res = runCLI(t, "fmt", "-check", messy, clean)
	if res.code != exitFail || strings.TrimSpace(res.stdout) != messy {
		t.Errorf("-check on a messy file: exit %d, stdout %q; want 1 and the file's name", res.code, res.stdout)
	}
	if got := readFile(t, messy); got != messyHCL {
		t.Errorf("-check wrote the file:\n%s", got)
	}

	res = runCLI(t, "fmt", "-check", "-diff", messy)
	if res.code != exitFail || !strings.Contains(res.stdout, "-source=\"s\"   # kept\n+  source  = \"s\" # kept\n") {
		t.Errorf("-check -diff: exit %d, stdout:\n%s", res.code, res.stdout)
	}
}

func TestFmtRewritesDirectory(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.hcl"), filepath.Join(dir, "sub", "b.hcl")
	hidden, other := filepath.Join(dir, ".git", "c.hcl"), filepath.Join(dir, "notes.txt")
	for _, p := range []string{a, b, hidden, other} {
		writeFile(t, p, messyHCL)
	}
	res := runCLI(t, "fmt", dir)
	if res.code != exitOK {
		t.Fatalf("exit %d, stderr %s", res.code, res.stderr)
	}
	if got := lines(res.stdout); len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("listed %q; want the two rewritten files", got)
	}
	for _, p := range []string{a, b} {
		if got := readFile(t, p); got != canonicalHCL {
			t.Errorf("%s:\n%s", p, got)
		}
		if info, _ := os.Stat(p); info.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v, want 0640 kept", p, info.Mode().Perm())
		}
	}
	for _, p := range []string{hidden, other} {
		if got := readFile(t, p); got != messyHCL {
			t.Errorf("%s was touched", p)
		}
	}
	// Formatting again changes nothing and lists nothing.
	res = runCLI(t, "fmt", dir)
	if res.code != exitOK || res.stdout != "" {
		t.Errorf("second fmt: exit %d, stdout %q", res.code, res.stdout)
	}
}

func TestFmtBrokenFile(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.hcl")
	writeFile(t, broken, "route \"r\" {\n  source = \n")
	res := runCLI(t, "fmt", broken)
	if res.code != exitFail || !strings.Contains(res.stderr, broken+":2:12: error:") {
		t.Errorf("exit %d, stderr %q; want 1 and a FILE:LINE:COL diagnostic", res.code, res.stderr)
	}
	if got := readFile(t, broken); got != "route \"r\" {\n  source = \n" {
		t.Errorf("a broken file was rewritten:\n%s", got)
	}
	res = runCLI(t, "fmt", filepath.Join(dir, "missing.hcl"))
	if res.code != exitFail || res.stderr == "" {
		t.Errorf("missing file: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runCLI(t, "fmt", "--nosuch")
	if res.code != exitUsage {
		t.Errorf("bad flag: exit %d", res.code)
	}
}

// The repository's own configurations are in canonical form.
func TestFmtRepositoryConfigs(t *testing.T) {
	res := runCLI(t, "fmt", "-check", "-diff", "../../router.hcl", "../../examples")
	if res.code != exitOK {
		t.Errorf("exit %d:\n%s%s", res.code, res.stdout, res.stderr)
	}
}
