package config

import (
	"strings"
	"testing"
	"time"
)

// TestPathologicalInput feeds inputs that would overflow HCL's parser stack or keep it busy for
// minutes: each must be refused quickly with a positioned error.
func TestPathologicalInput(t *testing.T) {
	const n = 5_000
	cases := map[string]string{
		// Without the limit, this one overflowed the stack: a fatal error, not a panic.
		"nested lists":     "router {\n  log_level = " + strings.Repeat("[", 200_000) + "\n}\n",
		"nested parens":    "router {\n  log_level = " + strings.Repeat("(", n) + "1" + strings.Repeat(")", n) + "\n}\n",
		"nested templates": "router {\n  log_level = " + strings.Repeat(`"${`, n) + "\n}\n",
		"nots":             "router {\n  log_level = " + strings.Repeat("!", n) + "true\n}\n",
		"negations":        "router {\n  log_level = " + strings.Repeat("-", n) + "1\n}\n",
		"conditionals":     "router {\n  log_level = " + strings.Repeat("true ? 1 : ", n) + "2\n}\n",
		"huge exponent":    "source \"s\" {\n  prefetch = 1e99999999\n}\n",
		"too large":        strings.Repeat("# comment\n", maxSourceSize/10+1),
	}
	for name, src := range cases {
		start := time.Now()
		cfg, diags := LoadBytes([]byte(src), "deep.hcl", nil)
		if cfg != nil || !diags.HasErrors() || diags[0].Subject == nil {
			t.Errorf("%s: cfg = %v, diags = %v", name, cfg, diags)
		}
		// Not a speed check: unguarded, these inputs ran for minutes, so only a bound far above any
		// loaded machine's time tells the guard is gone.
		if elapsed := time.Since(start); elapsed > time.Minute {
			t.Errorf("%s: took %v", name, elapsed)
		}
	}
}

// TestLimitsLeaveRealConfigsAlone: deep-ish but sensible values, long number-like strings and
// many conditionals in a list all load.
func TestLimitsLeaveRealConfigsAlone(t *testing.T) {
	src := `
cluster "c" { url = "amqp://localhost" }
source "s" {
  cluster  = "c"
  exchange = "e"
  queue    = "q"
  prefetch = -(-(10))
  bindings = [` + strings.Repeat(`true ? "a" : "b", `, 300) + `"sha.3e123456789"]
}
module "m" {
  path   = "m.wasm"
  config = { digest = "1e123456", nested = jsonencode([[[[[[[[[[1]]]]]]]]]]) }
}
route "r" {
  source  = "s"
  targets = []
  handler = "m"
}
`
	cfg, diags := LoadBytes([]byte(src), "ok.hcl", nil)
	if diags.HasErrors() {
		t.Fatal(formatted(diags))
	}
	check(t, "prefetch", cfg.Source("s").Prefetch, 10)
	check(t, "digest", cfg.Module("m").Config["digest"], "1e123456")
}

func TestHugeExponentInNumericString(t *testing.T) {
	src := "source \"s\" {\n  cluster = \"c\"\n  exchange = \"e\"\n  queue = \"q\"\n  prefetch = \"1E+99999999\"\n}\n"
	start := time.Now()
	_, diags := LoadBytes([]byte(src), "n.hcl", nil)
	if !strings.Contains(formatted(diags), "n.hcl:5:14: error: Invalid value: prefetch must be between 1 and 65535.") {
		t.Error(formatted(diags))
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("took %v", elapsed)
	}
}
