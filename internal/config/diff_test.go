package config

import (
	"os"
	"path/filepath"
	"reflect"
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

// The log's backend and the stream's settings are opened once, like the bbolt file.
func TestNeedsRestartForTheStreamLog(t *testing.T) {
	dir := t.TempDir()
	stream := strings.Replace(diffBase, `path = "data/router.db"`,
		"backend = \"stream\"\n  cluster = \"main\"\n  takeover = \"15s\"", 1)
	old := loadDiffConfig(t, dir, stream)
	next := loadDiffConfig(t, dir, strings.Replace(stream, `takeover = "15s"`, `takeover = "30s"`, 1))
	out := formatted(NeedsRestart(old, next))
	if !strings.Contains(out, "the store block changed (takeover)") {
		t.Errorf("a new takeover needs a restart; diagnostics:\n%s", out)
	}
	if out = formatted(NeedsRestart(loadDiffConfig(t, dir, diffBase), old)); !strings.Contains(out, "the store block changed (path, on_full, backend, cluster, stream, takeover)") {
		t.Errorf("a new backend needs a restart; diagnostics:\n%s", out)
	}
}

// A tracing block added (or changed) needs a restart; a new memory_limit is a change a reload
// applies.
func TestNeedsRestartTracingAndMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	old := loadDiffConfig(t, dir, diffBase)
	next := loadDiffConfig(t, dir, diffBase+"tracing {\n  endpoint = \"http://127.0.0.1:4318\"\n}\n")
	if out := formatted(NeedsRestart(old, next)); !strings.Contains(out, "error: Change needs a restart: the tracing block changed") {
		t.Errorf("tracing added: %s", out)
	}
	if d := NeedsRestart(next, next); len(d) != 0 {
		t.Errorf("the same tracing block: %s", formatted(d))
	}
	limited := loadDiffConfig(t, dir, strings.Replace(diffBase, `admin_addr = "127.0.0.1:9464"`, "admin_addr = \"127.0.0.1:9464\"\n  memory_limit = \"512MiB\"", 1))
	if d := NeedsRestart(old, limited); len(d) != 0 {
		t.Errorf("memory_limit refused: %s", formatted(d))
	}
	if got := changeLines(Changes(old, limited, nil, nil)); strings.Join(got, "|") != `~ router: memory_limit` {
		t.Errorf("memory_limit change: %q", got)
	}
}

// Each attribute a reload compares is reported by its name when its field alone changes, and
// an empty list, map or tls block reads as the absent one.
func TestBlockAttributesReportEachFieldByName(t *testing.T) {
	checkAttrs(t, "router", routerAttrs)
	checkAttrs(t, "cluster", clusterAttrs)
	checkAttrs(t, "source", sourceAttrs)
	checkAttrs(t, "target", targetAttrs)
	checkAttrs(t, "module", moduleAttrs)
	checkAttrs(t, "route", routeAttrs)
	checkAttrs(t, "store", storeAttrs)
}

func checkAttrs[T any](t *testing.T, kind string, attrs blockAttrs[T]) {
	t.Helper()
	typ, names := reflect.TypeFor[T](), attrs.names
	changes := func(a, b reflect.Value) []string { return attrs.changes(a.Interface().(T), b.Interface().(T)) }
	for i, f := range attrs.fields {
		a, b := reflect.New(typ).Elem(), reflect.New(typ).Elem()
		v := b.Field(f)
		switch v.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Int, reflect.Int64:
			v.SetInt(7)
		case reflect.Slice:
			v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
		case reflect.Map:
			v.Set(reflect.MakeMap(v.Type()))
			v.SetMapIndex(reflect.ValueOf("k"), reflect.ValueOf("v"))
		case reflect.Pointer:
			v.Set(reflect.New(v.Type().Elem()))
			v.Elem().Field(0).SetString("x")
		case reflect.Struct:
			v.Field(0).SetInt(3)
		default:
			t.Fatalf("%s %s: no test value for a %s", kind, names[i], v.Kind())
		}
		if got := changes(a, b); len(got) != 1 || got[0] != names[i] {
			t.Errorf("%s: changing %s reports %q", kind, names[i], got)
		}
		// The same value in another allocation is no change; an empty one is an absent one.
		c := reflect.New(typ).Elem()
		switch v.Kind() {
		case reflect.Slice:
			c.Field(f).Set(reflect.MakeSlice(v.Type(), 0, 0))
			if got := changes(a, c); len(got) != 0 {
				t.Errorf("%s: an empty %s reports %q", kind, names[i], got)
			}
		case reflect.Map:
			c.Field(f).Set(reflect.MakeMap(v.Type()))
			if got := changes(a, c); len(got) != 0 {
				t.Errorf("%s: an empty %s reports %q", kind, names[i], got)
			}
		case reflect.Pointer:
			c.Field(f).Set(reflect.New(v.Type().Elem()))
			c.Field(f).Elem().Field(0).SetString("x")
			if got := changes(b, c); len(got) != 0 {
				t.Errorf("%s: an equal %s reports %q", kind, names[i], got)
			}
		}
	}
}
