package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const diffBase = `
router {
  admin_addr = "127.0.0.1:9464"
}
store {
  path = "data/router.db"
}
cluster "main" {
  url = "amqp://guest:secret@localhost:5672/"
}
source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "router.in"
}
target "audit" {
  cluster  = "main"
  exchange = "audit"
}
target "ops" {
  cluster  = "main"
  exchange = "ops"
}
module "keep" {
  path = "keep.wasm"
}
route "orders" {
  source  = "in"
  match   = ["order.*"]
  filters = ["keep"]
  targets = ["audit"]
}
route "all" {
  source  = "in"
  targets = ["ops"]
}
`

func loadDiffConfig(t *testing.T, dir, src string) *Config {
	t.Helper()
	path := filepath.Join(dir, "router.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := Load(path, func(string) (string, bool) { return "", false })
	if diags.HasErrors() {
		t.Fatalf("loading:\n%s", formatted(diags))
	}
	return cfg
}

func changeLines(changes []Change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, c.String())
	}
	return out
}

func TestChanges(t *testing.T) {
	dir := t.TempDir()
	old := loadDiffConfig(t, dir, diffBase)
	wasm := map[string]string{"keep": "aaa"}

	if got := Changes(old, old, wasm, wasm); len(got) != 0 {
		t.Errorf("a configuration differs from itself: %q", changeLines(got))
	}
	if got := changeLines(Changes(old, old, wasm, map[string]string{"keep": "bbb"})); strings.Join(got, "|") != `~ module "keep": wasm file changed` {
		t.Errorf("rebuilt module: %q", got)
	}

	next := strings.NewReplacer(
		`match   = ["order.*"]`, `match   = ["order.#"]`,
		`route "all" {`, `route "new" {`,
		`exchange = "ops"`, `exchange = "ops.v2"`,
		`url = "amqp://guest:secret@localhost:5672/"`, `url = "amqp://guest:other@localhost:5672/"`,
	).Replace(diffBase) + `
target "extra" {
  cluster  = "main"
  exchange = "extra"
}`
	got := changeLines(Changes(old, loadDiffConfig(t, dir, next), wasm, wasm))
	want := []string{
		`~ cluster "main": url`,
		`~ target "ops": exchange`,
		`+ target "extra"`,
		`- route "all"`,
		`~ route "orders": match`,
		`+ route "new"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, line := range got {
		if strings.Contains(line, "secret") || strings.Contains(line, "other") {
			t.Errorf("a change line shows a credential: %s", line)
		}
	}
}

func TestNeedsRestart(t *testing.T) {
	dir := t.TempDir()
	old := loadDiffConfig(t, dir, diffBase)
	if d := NeedsRestart(old, old); len(d) != 0 {
		t.Fatalf("no change, yet: %s", formatted(d))
	}
	next := loadDiffConfig(t, dir, strings.NewReplacer(
		`path = "data/router.db"`, `path = "data/other.db"`,
		`admin_addr = "127.0.0.1:9464"`, `admin_addr = "127.0.0.1:9465"`,
	).Replace(diffBase))
	out := formatted(NeedsRestart(old, next))
	for _, want := range []string{
		"router.hcl:3:3: error: Change needs a restart: router.admin_addr changed",
		"router.hcl:5:1: error: Change needs a restart: the store block changed (path)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, out)
		}
	}
}
