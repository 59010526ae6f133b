package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// A candidate that cannot be put in force changes nothing: the answer carries FILE:LINE:COL
// diagnostics, the generation stays, the router stays ready and keeps delivering.
func TestReloadRefused(t *testing.T) {
	rabbit.SkipIfShort(t)
	w := newReloadWorld(t)
	good := reloadConfigs[0].routes // configuration A of the reload test
	w.write(t, good)
	r := startRouter(t, w.path)
	t1 := w.collectors["t1"]
	var delivered []string
	batch := 0
	traffic := func(what string) {
		t.Helper()
		batch++
		msgs, ids := numbered("b"+string(rune('a'+batch)), "order.x", 20)
		mustPublish(t, w.srcX, msgs...)
		delivered = append(delivered, ids...)
		t1.waitIDs(t, what, delivered, 30*time.Second)
	}
	traffic("before any reload")

	noEntry := filepath.Join(w.dir, "noentry.wasm")
	if err := os.WriteFile(noEntry, wasmNoExports, 0o600); err != nil {
		t.Fatal(err)
	}
	diag := regexp.MustCompile(`^` + regexp.QuoteMeta(w.path) + `:\d+:\d+: error: `)
	cases := []struct {
		name  string
		write func()
		want  string
	}{
		{"syntax error", func() { w.write(t, good+"route \"broken\" {\n  source = \n}\n") }, "Invalid expression"},
		{"undeclared reference", func() {
			w.write(t, good+"route \"r\" {\n  source  = \"in\"\n  targets = [\"nowhere\"]\n}\n")
		}, "nowhere"},
		{"module missing its entry point", func() {
			// The filter module, now also asked to be a handler: it has no handle export.
			w.write(t, good+"route \"r\" {\n  source  = \"in\"\n  handler = \"orders_only\"\n  targets = [\"t3\"]\n}\n")
		}, "missing export"},
		{"module that is no guest", func() {
			w.write(t, good+"module \"bare\" {\n  path = "+hclString(noEntry)+"\n}\nroute \"r\" {\n  source  = \"in\"\n  filters = [\"bare\"]\n  targets = [\"t3\"]\n}\n")
		}, "missing export"},
		{"module file missing", func() {
			w.write(t, good+"module \"gone\" {\n  path = "+hclString(filepath.Join(w.dir, "gone.wasm"))+"\n}\nroute \"r\" {\n  source  = \"in\"\n  filters = [\"gone\"]\n  targets = [\"t3\"]\n}\n")
		}, "gone.wasm"},
		{"unreachable new cluster", func() {
			w.write(t, good+clusterBlock("far", "amqp://guest:guest@127.0.0.1:1/")+targetBlock("far_t", "far", "x")+"route \"r\" {\n  source  = \"in\"\n  targets = [\"far_t\"]\n}\n")
		}, "cannot connect"},
		{"store change", func() { w.write(t, good+"store {\n  retention = \"1h\"\n}\n") }, "needs a restart"},
	}
	for _, c := range cases {
		c.write()
		start := time.Now()
		ans := r.Reloader.Do(context.Background(), app.ReloadRequest{}, "test")
		if ans.Applied || ans.Generation != 1 || len(ans.Diagnostics) == 0 {
			t.Fatalf("%s: applied %v, generation %d, diagnostics %q; want refused at generation 1", c.name, ans.Applied, ans.Generation, ans.Diagnostics)
		}
		if !diag.MatchString(ans.Diagnostics[0]) || !strings.Contains(strings.Join(ans.Diagnostics, "\n"), c.want) {
			t.Errorf("%s: diagnostics %q; want FILE:LINE:COL: error: lines mentioning %q", c.name, ans.Diagnostics, c.want)
		}
		if strings.Contains(strings.Join(ans.Diagnostics, "\n"), "guest:guest") {
			t.Errorf("%s: a credential in the diagnostics: %q", c.name, ans.Diagnostics)
		}
		if code, _ := readyz(r.Admin); code != 200 {
			t.Errorf("%s: /readyz %d after a refused reload", c.name, code)
		}
		t.Logf("%s: refused in %v: %s", c.name, time.Since(start).Round(time.Millisecond), ans.Diagnostics[0])
		traffic("after a refused reload (" + c.name + ")")
	}
	if d := t1.duplicates(); len(d) > 0 {
		t.Errorf("refused reloads made t1 receive messages twice: %v", sample(countKeys(d)))
	}
	if st := r.Engine.Status(); st.Generation != 1 || len(st.Routes) != 2 {
		t.Errorf("after refused reloads: generation %d, routes %v; want generation 1 and the two routes", st.Generation, st.Routes)
	}
	text := scrape(t, r.Admin)
	if n, _ := metricValue(text, "router_config_reloads_total", map[string]string{"result": "refused"}); int(n) != len(cases) {
		t.Errorf("router_config_reloads_total{result=refused} = %v, want %d", n, len(cases))
	}

	// The good configuration again, with a route added: applied.
	w.write(t, good+"route \"more\" {\n  source  = \"in\"\n  targets = [\"t3\"]\n}\n")
	if ans := r.Reloader.Do(context.Background(), app.ReloadRequest{}, "test"); !ans.Applied || ans.Generation != 2 {
		t.Fatalf("the good candidate: %+v", ans)
	}
}

// wasmNoExports is a valid module that exports nothing: no memory, no entry point.
var wasmNoExports = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
