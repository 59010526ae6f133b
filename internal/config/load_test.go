package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// loadValid loads a fixture that must give no diagnostic at all.
func loadValid(t *testing.T, path string) *Config {
	t.Helper()
	cfg, diags := Load(path, fixtureEnv)
	if len(diags) > 0 {
		t.Fatalf("unexpected diagnostics:\n%s", formatted(diags))
	}
	return cfg
}

func testdataDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func check[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func TestValidDefaults(t *testing.T) {
	cfg := loadValid(t, "testdata/valid_defaults.hcl")
	dir := testdataDir(t)
	check(t, "File", cfg.File, "testdata/valid_defaults.hcl")
	check(t, "Dir", cfg.Dir, dir)
	check(t, "Router", cfg.Router, RouterSpec{AdminAddr: "127.0.0.1:9464", LogLevel: "info", LogFormat: "text", MaxMessageSize: 128 << 20})
	check(t, "Store", cfg.Store, StoreSpec{Backend: "bbolt", Path: filepath.Join(dir, "data/router.db"), Retention: 168 * time.Hour, MaxSize: 10 << 30, OnFull: "block"})

	src := cfg.Source("in")
	check(t, "source bindings", src.Bindings, []string{"#"})
	check(t, "source prefetch", src.Prefetch, 256)
	check(t, "source queue type", src.QueueType, "classic")
	check(t, "source delivery limit", src.DeliveryLimit, 0)

	target := cfg.Target("out")
	check(t, "target clusters", target.Clusters, []string{"main"})
	check(t, "target mode", target.Mode, ModeSingle)
	check(t, "target routing key", target.RoutingKey, "")

	module := cfg.Module("noop")
	check(t, "module path", module.Path, filepath.Join(dir, "noop.wasm"))
	check(t, "module timeout", module.Timeout, 100*time.Millisecond)
	check(t, "module memory", module.MaxMemory, int64(64<<20))
	check(t, "module pool", module.PoolSize, 2)
	check(t, "module config", module.Config, map[string]string{})
	check(t, "module path position", module.PathRange.Start.Line, 18)

	route := cfg.Route("all")
	check(t, "route match", route.Match, []string{"#"})
	check(t, "route retry", route.Retry, RetrySpec{Attempts: 5, Backoff: 200 * time.Millisecond, MaxBackoff: 30 * time.Second})
	check(t, "route dead letter", route.DeadLetter, "")
	check(t, "route filters", route.Filters, []string{})
	check(t, "route handler", route.Handler, "")
	check(t, "route label position", [2]int{route.Range.Start.Line, route.Range.Start.Column}, [2]int{21, 7})

	check(t, "summary", cfg.Summary(), "1 cluster, 1 source, 1 target, 1 module, 1 route, 0 tests")
}

func TestValidContract(t *testing.T) {
	cfg := loadValid(t, "testdata/valid_contract.hcl")
	dir := testdataDir(t)
	check(t, "summary", cfg.Summary(), "2 clusters, 2 sources, 3 targets, 1 module, 1 route, 2 tests")
	check(t, "env url", cfg.Cluster("main").URL, "amqp://router:hunter2-env@rabbit.example:5672/prod")
	check(t, "token from env default", cfg.Router.AdminToken, "")
	check(t, "tls", *cfg.Cluster("dr").TLS, TLSSpec{
		CAFile:     filepath.Join(dir, "certs/ca.pem"),
		CertFile:   filepath.Join(dir, "certs/client.pem"),
		KeyFile:    "/etc/router/client.key",
		ServerName: "rabbit.example",
	})
	if cfg.Cluster("main").TLS != nil {
		t.Error("cluster main has TLS settings")
	}

	payments := cfg.Source("payments")
	check(t, "quorum", [3]any{payments.QueueType, payments.DeliveryLimit, payments.DeadLetterExchange},
		[3]any{"quorum", 5, "router.undeliverable"})

	everywhere := cfg.Target("orders_everywhere")
	check(t, "multi-cluster target", [2]any{everywhere.Clusters, everywhere.Mode}, [2]any{[]string{"main", "dr"}, ModeAll})

	module := cfg.Module("high_value")
	check(t, "module config", module.Config, map[string]string{"min_amount": "100", "currency": "EUR", "ratio": "1.5"})

	route := cfg.Route("orders")
	check(t, "match", route.Match, []string{"order.*", "payment.#"})
	check(t, "retry", route.Retry, RetrySpec{Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second})
	check(t, "dead letter", route.DeadLetter, "dlq")
	check(t, "filter position", route.FilterRanges[0].Start.Line, 74)
	check(t, "targets", route.Targets, []string{"analytics", "orders_everywhere"})

	big := cfg.Test("big orders reach analytics")
	check(t, "test input", big.Input, TestInput{Source: "in", RoutingKey: "order.created",
		Headers: map[string]string{"tenant": "acme"}, Body: `{"amount":500}`})
	check(t, "test expect route", big.Expect.Route, "orders")
	if big.Expect.RoutingKey != nil || big.Expect.Body != nil || big.Expect.Headers != nil {
		t.Errorf("unwritten checks are set: %+v", big.Expect)
	}

	small := cfg.Test("small orders are dropped")
	if small.Expect.Targets == nil || len(small.Expect.Targets) != 0 {
		t.Errorf("targets = [] gives %#v, want an empty non-nil slice", small.Expect.Targets)
	}
	check(t, "expect routing key", *small.Expect.RoutingKey, "order.created")
	check(t, "expect body", *small.Expect.Body, `{"amount":5}`)
	check(t, "expect headers", small.Expect.Headers, map[string]string{"tenant": "acme", "retries": "2"})

	check(t, "routes from in", len(cfg.RoutesFrom("in")), 1)
	check(t, "routes from payments", len(cfg.RoutesFrom("payments")), 0)
	if cfg.Cluster("nope") != nil || cfg.Route("nope") != nil {
		t.Error("lookup of an undeclared name found something")
	}
}

func TestValidFunctions(t *testing.T) {
	cfg := loadValid(t, "testdata/valid_functions.hcl")
	check(t, "env admin addr", cfg.Router.AdminAddr, "0.0.0.0:9464")
	check(t, "file token", cfg.Router.AdminToken, "hunter2-token-from-file")
	check(t, "lower", cfg.Router.LogLevel, "debug")
	check(t, "fractional size", cfg.Router.MaxMessageSize, int64(1572864))
	check(t, "store", cfg.Store, StoreSpec{Backend: "bbolt", Path: "/var/lib/router/router.db", Retention: 36 * time.Hour, MaxSize: 500_000_000, OnFull: "drop_oldest"})
	check(t, "env default in format", cfg.Source("in").Queue, "router.default")
	check(t, "split", cfg.Source("in").Bindings, []string{"order.*", "payment.#"})
	check(t, "join", cfg.Target("out").RoutingKey, "fixed.key")
	check(t, "failover", [2]any{cfg.Target("ha").Clusters, cfg.Target("ha").Mode}, [2]any{[]string{"main"}, ModeFailover})
	check(t, "merge+jsondecode", cfg.Module("enrich").Config, map[string]string{"region": "eu", "api_key": "k-1", "limit": "10"})
	check(t, "pool size", cfg.Module("enrich").PoolSize, 8)
	route := cfg.Route("enriched")
	check(t, "concat", route.Match, []string{"order.#", "refund.*"})
	check(t, "handler position", route.HandlerRange.Start.Line, 51)
	check(t, "headers with a number", cfg.Test("encoded").Input.Headers, map[string]string{"tenant": "acme", "attempt": "1"})
	check(t, "base64encode", cfg.Test("encoded").Input.Body, "NDI=")
}

func TestEnvFallsBackToProcessEnvironment(t *testing.T) {
	t.Setenv("WASMROUTER_CONFIG_TEST_QUEUE", "from-process")
	src := `
cluster "c" { url = "amqp://localhost" }
source "s" {
  cluster  = "c"
  exchange = "e"
  queue    = env("WASMROUTER_CONFIG_TEST_QUEUE")
}
route "r" {
  source  = "s"
  targets = []
  handler = "m"
}
module "m" { path = "m.wasm" }
`
	cfg, diags := LoadBytes([]byte(src), "inline.hcl", nil)
	if diags.HasErrors() {
		t.Fatal(formatted(diags))
	}
	check(t, "queue", cfg.Source("s").Queue, "from-process")
}

func TestLoadMissingFile(t *testing.T) {
	cfg, diags := Load("testdata/does_not_exist.hcl", nil)
	if cfg != nil {
		t.Error("a Config for a missing file")
	}
	check(t, "output", formatted(diags), "testdata/does_not_exist.hcl: error: Cannot read configuration: no such file or directory\n")
}

func TestSyntaxErrorGivesNoConfig(t *testing.T) {
	cfg, diags := Load("testdata/invalid_syntax.hcl", nil)
	if cfg != nil || !diags.HasErrors() {
		t.Fatalf("cfg = %v, diags = %v", cfg, diags)
	}
}

// TestConfigWithErrorsIsReturned: a caller can go on checking what did load.
func TestConfigWithErrorsIsReturned(t *testing.T) {
	cfg, diags := Load("testdata/invalid_references.hcl", fixtureEnv)
	if !diags.HasErrors() || cfg == nil {
		t.Fatalf("cfg = %v, errors = %v", cfg, diags.HasErrors())
	}
	check(t, "route source as written", cfg.Route("orders").Source, "inn")
}

func TestDiagnosticsAreSorted(t *testing.T) {
	for _, path := range []string{"testdata/invalid_duplicates.hcl", "testdata/invalid_types.hcl"} {
		_, diags := Load(path, fixtureEnv)
		for i := 1; i < len(diags); i++ {
			a, b := diags[i-1].Subject.Start, diags[i].Subject.Start
			if a.Line > b.Line || a.Line == b.Line && a.Column > b.Column {
				t.Errorf("%s: %v before %v", path, a, b)
			}
		}
	}
}

func TestSummaryEmpty(t *testing.T) {
	check(t, "summary", (&Config{}).Summary(), "0 clusters, 0 sources, 0 targets, 0 modules, 0 routes, 0 tests")
}

// TestFixturesAreSelfContained guards the relative paths the fixtures use.
func TestFixturesAreSelfContained(t *testing.T) {
	for _, name := range []string{"secrets/admin_token.txt", "module.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil || len(bytes.TrimSpace(data)) == 0 || strings.Contains(name, "..") {
			t.Fatalf("testdata/%s: %v", name, err)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	base, err := os.ReadFile("testdata/valid_defaults.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for text, want := range map[string]int64{"256MiB": 256 << 20, "1GiB": 1 << 30} {
		path := filepath.Join("testdata", "valid_defaults.hcl")
		cfg, diags := LoadBytes(append([]byte(`router { memory_limit = "`+text+`" }`+"\n"), base...), path, fixtureEnv)
		if len(diags) > 0 {
			t.Fatalf("%s: %s", text, formatted(diags))
		}
		check(t, "memory limit "+text, cfg.Router.MemoryLimit, want)
	}
	_, diags := LoadBytes(append([]byte(`router { memory_limit = "1MiB" }`+"\n"), base...), "testdata/valid_defaults.hcl", fixtureEnv)
	if !strings.Contains(formatted(diags), "memory_limit must be between 16MiB") {
		t.Fatalf("a limit below 16MiB: %s", formatted(diags))
	}
}

func TestValidStreamStore(t *testing.T) {
	cfg := loadValid(t, "testdata/valid_store_stream.hcl")
	check(t, "Store", cfg.Store, StoreSpec{
		Backend: "stream", Cluster: "main", Stream: "orders.log", Takeover: 30 * time.Second,
		Retention: 48 * time.Hour, MaxSize: 20 << 30, StreamPort: 5553,
	})
	if _, ok := cfg.Attrs["store.cluster"]; !ok {
		t.Error("store.cluster has no position for runtime errors")
	}
}

func TestStreamStoreDefaults(t *testing.T) {
	cfg, diags := LoadBytes([]byte(`
store {
  backend = "stream"
  cluster = "main"
}
cluster "main" { url = "amqp://localhost/" }
source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q"
}
route "r" { source = "in" }
`), "router.hcl", fixtureEnv)
	if diags.HasErrors() {
		t.Fatal(formatted(diags))
	}
	check(t, "Store", cfg.Store, StoreSpec{
		Backend: "stream", Cluster: "main", Stream: DefaultStream, Takeover: DefaultTakeover,
		Retention: DefaultRetention, MaxSize: DefaultStoreMaxSize,
	})
}
