package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

// TestAdminAPI checks health, readiness (also while the source's broker is unreachable: its
// cluster goes through a proxy that starts cut), the status document and the metrics.
func TestAdminAPI(t *testing.T) {
	rabbit.SkipIfShort(t)
	proxy := tcpproxy.Start(t, rabbit.Addr(t))
	proxy.Cut()
	srcX, srcQ := sourceNames(t)
	outX := rabbit.Unique("e2e.out")
	out := collect(t, targetQueue(t, outX))
	cfg := clusterBlock("edge", rabbit.URLVia(t, proxy.Addr())) + clusterBlock("main", rabbit.URL()) +
		sourceBlock("in", "edge", srcX, srcQ) + targetBlock("out", "main", outX) + `
route "all" {
  source  = "in"
  match   = ["admin.*"]
  targets = ["out"]
}
`
	r := startRouterUnready(t, writeConfig(t, t.TempDir(), cfg))

	expectCode(t, r.Admin, "/healthz", http.StatusOK)
	checkNotReady(t, r.Admin, "at start, with the source's broker unreachable")
	proxy.Restore()
	waitReady(t, r.Admin, 30*time.Second)
	expectCode(t, r.Admin, "/healthz", http.StatusOK)

	mustPublish(t, srcX,
		message{key: "admin.one", msg: amqp.Publishing{MessageId: "admin-1"}},
		message{key: "other.key", msg: amqp.Publishing{MessageId: "admin-unmatched"}},
		message{key: "admin.two", msg: amqp.Publishing{MessageId: "admin-2"}})
	out.waitIDs(t, "target out", []string{"admin-1", "admin-2"}, 30*time.Second)
	waitSettled(t, r.Admin, 3, 30*time.Second)
	// Readiness needs the consuming connection only; the metric needs the publishing one too,
	// which may still be waiting out its reconnect backoff from the cut start.
	waitCluster(t, r.Admin, "edge", true, 30*time.Second)
	checkStatusDocument(t, r.Admin)
	checkMetrics(t, r.Admin)

	proxy.Cut()
	checkNotReady(t, r.Admin, "after the source's broker became unreachable")
	proxy.Restore()
	waitReady(t, r.Admin, 30*time.Second)
}

func expectCode(t *testing.T, admin, path string, want int) []byte {
	t.Helper()
	code, body, err := get(admin, path)
	if err != nil || code != want {
		t.Fatalf("GET %s: %d %v %s; want %d", path, code, err, body, want)
	}
	return body
}

// checkNotReady waits for /readyz to answer 503 with a JSON reason, and
// checks it stays so for a moment (the cluster keeps failing to connect).
func checkNotReady(t *testing.T, admin, when string) {
	t.Helper()
	var body []byte
	waitFor(t, 30*time.Second, func() bool {
		var code int
		code, body = readyz(admin)
		return code == http.StatusServiceUnavailable
	}, func() string { return "/readyz never answered 503 " + when + ": " + string(body) })
	for range 5 {
		code, b := readyz(admin)
		if code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz answered %d %s; want 503 %s", code, b, when)
		}
		var doc struct{ Reason string }
		if err := json.Unmarshal(b, &doc); err != nil || doc.Reason == "" {
			t.Fatalf("/readyz 503 body %s: want JSON with a reason (%v)", b, err)
		}
		time.Sleep(20 * time.Millisecond) // spread the samples over the reconnect attempts
	}
	st := getStatus(t, admin)
	if st.Ready || st.Reason == "" {
		t.Errorf("/api/v1/status %s: ready=%v reason=%q; want not ready, with a reason", when, st.Ready, st.Reason)
	}
}

// checkStatusDocument checks the shape and values of /api/v1/status after three events, two
// of them delivered.
func checkStatusDocument(t *testing.T, admin string) {
	t.Helper()
	body := expectCode(t, admin, "/api/v1/status", http.StatusOK)
	checkNoPassword(t, "/api/v1/status", string(body))
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("/api/v1/status is not JSON: %v\n%s", err, body)
	}
	for _, k := range []string{"ready", "sources", "streams", "clusters", "store", "routes"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("/api/v1/status lacks %q: %s", k, body)
		}
	}
	st := getStatus(t, admin)
	if !st.Ready || len(st.Sources) != 1 || !st.Sources[0].Consuming || st.Sources[0].Name != "in" {
		t.Errorf("/api/v1/status: ready %v, sources %+v; want ready, source in consuming", st.Ready, st.Sources)
	}
	if len(st.Streams) != 1 {
		t.Fatalf("/api/v1/status: streams %+v; want one (route all, target out)", st.Streams)
	}
	s := st.Streams[0]
	if s.Route != "all" || s.Target != "out" || s.Cluster != "main" || s.Position != 3 || s.Lag != 0 {
		t.Errorf("/api/v1/status: stream %+v; want route all, target out, cluster main, position 3, lag 0", s)
	}
	if st.Store.LastSeq != 3 || st.Store.FirstSeq != 1 || st.Store.SizeBytes <= 0 {
		t.Errorf("/api/v1/status: store %+v; want first_seq 1, last_seq 3, a size", st.Store)
	}
	for _, key := range []string{`"position"`, `"lag"`, `"size_bytes"`, `"first_seq"`, `"last_seq"`, `"consuming"`} {
		if !strings.Contains(string(body), key) {
			t.Errorf("/api/v1/status lacks the field %s", key)
		}
	}
}

// checkMetrics checks the documented metrics (docs/metrics.md) that a router without modules exports.
func checkMetrics(t *testing.T, admin string) {
	t.Helper()
	m := scrape(t, admin)
	checkNoPassword(t, "/metrics", m)
	in := map[string]string{"source": "in"}
	pair := map[string]string{"route": "all", "target": "out"}
	metricIs(t, m, "router_events_consumed_total", in, 3)
	metricIs(t, m, "router_events_stored_total", in, 3)
	metricIs(t, m, "router_events_unmatched_total", in, 1)
	metricIs(t, m, "router_events_delivered_total", pair, 2)
	metricIs(t, m, "router_delivery_lag_events", pair, 0)
	metricIs(t, m, "router_broker_connected", map[string]string{"cluster": "edge"}, 1)
	metricIs(t, m, "router_broker_connected", map[string]string{"cluster": "main"}, 1)
	if v, ok := metricValue(m, "router_store_size_bytes", nil); !ok || v <= 0 {
		t.Errorf("router_store_size_bytes = %v (exported: %v); want the log's size", v, ok)
	}
}

// checkNoPassword fails if text shows the broker password.
func checkNoPassword(t *testing.T, what, text string) {
	t.Helper()
	u, err := url.Parse(rabbit.URL())
	if err != nil || u.User == nil {
		return
	}
	if pw, ok := u.User.Password(); ok && strings.Contains(text, u.User.Username()+":"+pw+"@") {
		t.Errorf("%s shows the broker password", what)
	}
}
