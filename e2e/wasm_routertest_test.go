package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// exampleConfigDir copies the repository's router.hcl, unchanged, into a test directory laid out as
// the repository is, with the Go guests built from the current sources and the committed C
// guest.
func exampleConfigDir(t *testing.T) (dir, config string) {
	t.Helper()
	dir = wasmDir(t)
	guests := map[string]string{
		"keyfilter": wasmRepoFile(t, "examples/wasm/keyfilter/keyfilter.wasm"),
		"stamp":     wasmRepoFile(t, "examples/wasm/stamp/stamp.wasm"),
	}
	for _, g := range wasmGoGuests {
		guests[g] = wasmGoGuest(t, g)
	}
	for name, from := range guests {
		b, err := os.ReadFile(from)
		if err == nil {
			err = os.MkdirAll(filepath.Join(dir, "examples", "wasm", name), 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "examples", "wasm", name, name+".wasm"), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.ReadFile(wasmRepoFile(t, "router.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, string(src)
}

// TestRouterTestCommand: `router test` passes the example configuration's test blocks without a
// broker, fails a wrong expectation, and with --events prints one JSON decision per event.
func TestRouterTestCommand(t *testing.T) {
	dir, example := exampleConfigDir(t)
	t.Setenv("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/") // nothing listens: no broker needed
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("router.hcl", example)

	code, stdout, stderr := runCLI(t, dir, "test", "-c", "router.hcl")
	if code != 0 || strings.Count(stdout, "PASS ") != 5 || !strings.Contains(stdout, "5 passed, 0 failed") {
		t.Fatalf("router test on the example: exit %d, want 0 and 5 passed, 0 failed\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	// A wrong expectation fails, naming the test block and why.
	write("wrong.hcl", example+`
test "small orders reach analytics" {
  input {
    source      = "in"
    routing_key = "order.created"
    body        = jsonencode({ amount = 5 })
  }
  expect {
    route   = "big_orders"
    targets = ["analytics"]
  }
}
`)
	line := strings.Count(example, "\n") + 2
	code, stdout, _ = runCLI(t, dir, "test", "-c", "wrong.hcl")
	wantFail := "FAIL small orders reach analytics (wrong.hcl:" + strconv.Itoa(line) + ")"
	if code != 1 || !strings.Contains(stdout, wantFail) || !strings.Contains(stdout, "dropped by module high_value") ||
		!strings.Contains(stdout, "5 passed, 1 failed") {
		t.Errorf("router test with a wrong expectation: exit %d, want 1, %q, the reason and 5 passed, 1 failed\n%s", code, wantFail, stdout)
	}

	write("events.jsonl", `{"routing_key":"order.created","message_id":"m1","headers":{"tenant":"acme"},"body":{"amount":500,"customer":{"email":"a@example.com","phone":"555"},"items":[{"sku":"A"},{"sku":"B"}]}}
{"routing_key":"order.created","body":{"amount":5}}

{"routing_key":"payment.captured","headers":{"region":"eu"},"body":"{}"}
{"routing_key":"payment.captured","headers":{"region":"us"},"body":"{}"}
{"routing_key":"order.updated","body":"not json"}
{"routing_key":"other.thing","body":"x"}
`)
	code, stdout, stderr = runCLI(t, dir, "test", "-c", "router.hcl", "--events", "events.jsonl")
	if code != 0 {
		t.Fatalf("router test --events: exit %d, want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	checkEventDecisions(t, parseTestDecisions(t, stdout))

	write("broken.jsonl", "{\"routing_key\":\"order.created\",\"body\":{\"amount\":500}}\n{not json\n")
	code, stdout, stderr = runCLI(t, dir, "test", "-c", "router.hcl", "--events", "broken.jsonl")
	if code != 1 || !strings.Contains("\n"+stderr, "\nbroken.jsonl:2: error: ") || len(parseTestDecisions(t, stdout)) != 1 {
		t.Errorf("router test --events with a bad line 2: exit %d, want 1, a diagnostic for line 2 and the good line's decision\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// testDecision is one line of `router test --events`.
type testDecision struct {
	Line       int    `json:"line"`
	Source     string `json:"source"`
	RoutingKey string `json:"routing_key"`
	MessageID  string `json:"message_id"`
	Routes     []struct {
		Route   string   `json:"route"`
		Verdict string   `json:"verdict"`
		Module  string   `json:"module"`
		Reason  string   `json:"reason"`
		Targets []string `json:"targets"`
		Outputs []struct {
			Target     string         `json:"target"`
			RoutingKey string         `json:"routing_key"`
			Headers    map[string]any `json:"headers"`
			Body       string         `json:"body"`
			Emitted    bool           `json:"emitted"`
		} `json:"outputs"`
	} `json:"routes"`
}

func parseTestDecisions(t *testing.T, stdout string) map[int]testDecision {
	t.Helper()
	out := map[int]testDecision{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if line == "" {
			continue
		}
		var d testDecision
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("router test --events printed a line that is not JSON: %q: %v", line, err)
		}
		out[d.Line] = d
	}
	return out
}

// checkEventDecisions checks the decisions for events.jsonl (line 3 is blank).
func checkEventDecisions(t *testing.T, got map[int]testDecision) {
	t.Helper()
	if len(got) != 6 {
		t.Errorf("%d decisions, want one per event (6)", len(got))
	}
	type route struct{ name, verdict, module, reason, targets string }
	want := map[int][]route{
		1: {{"big_orders", "deliver", "", "", "analytics"}, {"order_items", "deliver", "", "", "order_items"}},
		2: {{"big_orders", "drop", "high_value", "", ""}, {"order_items", "dead_letter", "split_items", "not an array", ""}},
		4: {{"eu_payments", "deliver", "", "", "audit"}},
		5: {{"eu_payments", "drop", "eu_only", "", ""}},
		6: {{"big_orders", "dead_letter", "high_value", `"amount" is missing`, ""}},
		7: nil,
	}
	for line, routes := range want {
		d, ok := got[line]
		if !ok {
			t.Errorf("no decision for line %d", line)
			continue
		}
		if d.Source != "in" || len(d.Routes) != len(routes) {
			t.Errorf("line %d: source %q, %d routes; want in, %d routes: %+v", line, d.Source, len(d.Routes), len(routes), d.Routes)
			continue
		}
		for i, w := range routes {
			r := d.Routes[i]
			if r.Route != w.name || r.Verdict != w.verdict || r.Module != w.module ||
				!strings.Contains(r.Reason, w.reason) || strings.Join(r.Targets, ",") != w.targets {
				t.Errorf("line %d route %d: %s %s module %q reason %q targets %v; want %+v",
					line, i, r.Route, r.Verdict, r.Module, r.Reason, r.Targets, w)
			}
		}
	}
	first := got[1]
	if first.MessageID != "m1" || len(first.Routes) != 2 {
		t.Fatalf("line 1: %+v", first)
	}
	big := first.Routes[0].Outputs
	if len(big) != 1 || big[0].Target != "analytics" || big[0].Emitted {
		t.Fatalf("line 1, big_orders: outputs %+v, want the event to analytics", big)
	}
	sameJSON(t, "line 1 to analytics", []byte(big[0].Body),
		`{"amount":500,"customer":{"email":"***","phone":"***"},"items":[{"sku":"A"},{"sku":"B"}]}`)
	for k, v := range map[string]any{"x-redacted": "2", "tenant": "acme", "x-router-route": "big_orders", "x-router-seq": 1.0} {
		if big[0].Headers[k] != v {
			t.Errorf("line 1 to analytics: header %s = %#v, want %#v", k, big[0].Headers[k], v)
		}
	}
	split := first.Routes[1].Outputs
	if len(split) != 2 {
		t.Fatalf("line 1, order_items: outputs %+v, want two emitted items", split)
	}
	for i, body := range []string{`{"sku":"A"}`, `{"sku":"B"}`} {
		o := split[i]
		if o.Target != "order_items" || o.RoutingKey != "order.created.item" || o.Body != body || !o.Emitted {
			t.Errorf("line 1, order_items output %d: %+v; want emitted %s to order_items with key order.created.item", i, o, body)
		}
	}
}
