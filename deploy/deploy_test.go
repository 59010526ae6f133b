// Package deploy holds what runs next to the router: the Grafana dashboard and the
// Prometheus alert rules. Its tests check that they use only metrics the router exports and
// that promtool accepts the rules and their unit tests.
package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
)

// describer is a Registerer that keeps the names of what is registered with it.
type describer struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		m := fqName.FindStringSubmatch(desc.String())
		if m == nil {
			continue
		}
		d.names[m[1]] = true
		// A histogram is queried through its series.
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			d.names[m[1]+suffix] = true
		}
	}
	return nil
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d *describer) Unregister(prometheus.Collector) bool { return false }

// exported are the metric names the router's registry holds.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	d := &describer{names: map[string]bool{}}
	app.NewCollectors(d) // every package's collectors, as the router registers them
	if len(d.names) < 20 {
		t.Fatalf("only %d metric names found: %v", len(d.names), d.names)
	}
	return d.names
}

var metricName = regexp.MustCompile(`\brouter_[a-z0-9_]+\b`)

// dashboardExprs are the queries of every panel and variable of the dashboard.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("grafana/wasmrouter.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana/wasmrouter.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Definition != "" { // the data source variable has no query
			exprs = append(exprs, v.Definition)
		}
	}
	return exprs
}

// ruleExprs are the expr lines of the alert rules (each rule's expression fits on its line).
func ruleExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, line := range strings.Split(string(data), "\n") {
		if e, ok := strings.CutPrefix(strings.TrimSpace(line), "expr:"); ok {
			exprs = append(exprs, strings.TrimSpace(e))
		}
	}
	return exprs
}

func TestDashboardAndAlertsUseOnlyExportedMetrics(t *testing.T) {
	have := exported(t)
	used := map[string]bool{}
	for what, exprs := range map[string][]string{"dashboard": dashboardExprs(t), "alerts": ruleExprs(t)} {
		if len(exprs) < 6 {
			t.Fatalf("%s: only %d expressions found", what, len(exprs))
		}
		for _, e := range exprs {
			names := metricName.FindAllString(e, -1)
			if len(names) == 0 && !strings.Contains(e, "$") {
				t.Errorf("%s: %q names no router metric", what, e)
			}
			for _, n := range names {
				used[n] = true
				if !have[n] {
					t.Errorf("%s: %q uses %s, which the router does not export", what, e, n)
				}
			}
		}
	}
	// The dashboard covers what operators ask for.
	for _, n := range []string{
		"router_events_stored_total", "router_events_delivered_total", "router_delivery_lag_events",
		"router_events_dead_lettered_total", "router_wasm_call_duration_seconds_bucket", "router_wasm_calls_total",
		"router_store_size_bytes", "router_broker_connected", "router_ready",
	} {
		if !used[n] {
			t.Errorf("neither the dashboard nor the alerts use %s", n)
		}
	}
	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("metrics used: %s", strings.Join(names, " "))
}

// promtool runs promtool (package prometheus); scripts/setup.sh installs it. Under -short
// the check is skipped; otherwise a missing promtool fails the test.
func promtool(t *testing.T, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if testing.Short() {
			t.Skip("promtool not installed (skipped with -short)")
		}
		t.Fatal("promtool not found: scripts/setup.sh installs it (Debian package prometheus)")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestPromtoolChecksTheRules(t *testing.T) {
	promtool(t, "check", "rules", "prometheus/alerts.yml")
}

func TestPromtoolRunsTheRulesTests(t *testing.T) {
	promtool(t, "test", "rules", "prometheus/alerts_test.yml")
}
