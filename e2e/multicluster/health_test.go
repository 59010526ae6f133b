package multicluster

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

// TestHealthPerCluster cuts a target-only cluster, then a source cluster: the status API shows
// each cluster's state and last error; a dead target is lag and the router stays ready, a dead
// source makes it unready until the source consumes again.
func TestHealthPerCluster(t *testing.T) {
	node := second.Node(t)
	mainURL := rabbit.URL()
	srcProxy := tcpproxy.Start(t, node.Addr())
	tgtProxy := tcpproxy.Start(t, rabbit.Addr(t))
	in, queue, out := rabbit.Unique("mc.health.in"), rabbit.Unique("mc.health.router"), rabbit.Unique("mc.health.out")
	deleteAtCleanup(t, node.URL(), []string{in}, []string{queue})
	got := newSink(t, "out", mainURL, out)
	r := startRouter(t, clusterBlock("src", "amqp://guest:guest@"+srcProxy.Addr()+"/")+
		clusterBlock("tgt", rabbit.URLVia(t, tgtProxy.Addr()))+
		sourceBlock("in", "src", in, queue)+
		targetBlock("out", "tgt", out)+
		routeBlock("r", "in", "out"))
	r.waitReady(t, 30*time.Second)
	r.waitCluster(t, "tgt", true, 30*time.Second)
	for _, name := range []string{"src", "tgt"} {
		if v := r.metric(t, "router_broker_connected", map[string]string{"cluster": name}); v != 1 {
			t.Errorf("router_broker_connected{cluster=%q} = %v while connected", name, v)
		}
	}
	f := newFeeder(t, node.URL(), in, "h")

	// A target-only cluster away: its events wait in the log; the router stays ready.
	tgtProxy.Cut()
	if c := r.waitCluster(t, "tgt", false, 10*time.Second); c.LastError == "" {
		t.Error("status: cluster tgt is down with no last error")
	}
	if c := r.status(t).cluster(t, "src"); !c.Connected {
		t.Error("status: cluster src reported down while only tgt was cut")
	}
	if v := r.metric(t, "router_broker_connected", map[string]string{"cluster": "tgt"}); v != 0 {
		t.Errorf("router_broker_connected{cluster=\"tgt\"} = %v while cut", v)
	}
	f.publish(20)
	waitFor(t, 10*time.Second, func() bool {
		lag, _ := r.status(t).streamLag("r", "out", "")
		return lag >= 20
	}, func() string { return "stream r -> out never showed the 20 waiting events as lag" })
	for until := time.Now().Add(2 * time.Second); time.Now().Before(until); time.Sleep(50 * time.Millisecond) {
		if code, body := r.readyz(t); code != http.StatusOK {
			t.Fatalf("/readyz %d while only a target cluster is away: %s", code, body)
		}
	}
	tgtProxy.Restore()
	r.waitCluster(t, "tgt", true, 30*time.Second)
	got.waitAll(t, f, 1, 20, 20*time.Second)

	// A source cluster away: not ready, with the reason.
	srcProxy.Cut()
	var body string
	waitFor(t, 10*time.Second, func() bool {
		var code int
		code, body = r.readyz(t)
		return code == http.StatusServiceUnavailable
	}, func() string { return "/readyz still ready with the source cluster cut: " + body })
	var reason struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(body), &reason); err != nil || !strings.Contains(reason.Reason, "source in") {
		t.Errorf("/readyz 503 body %s: want a JSON reason naming source in", body)
	}
	st := r.status(t)
	if c := st.cluster(t, "src"); c.Connected || c.LastError == "" {
		t.Errorf("status: cluster src %+v while cut, want down with a last error", c)
	}
	if len(st.Sources) != 1 || st.Sources[0].Consuming {
		t.Errorf("status: sources %+v while their cluster is cut", st.Sources)
	}
	srcProxy.Restore()
	r.waitReady(t, 30*time.Second)
	f.publish(5)
	got.waitAll(t, f, 1, 25, 20*time.Second)
}

// TestStatusClusterFieldNames pins the JSON names of a cluster's state in /api/v1/status to
// the snake_case of every other field there.
func TestStatusClusterFieldNames(t *testing.T) {
	rabbit.SkipIfShort(t)
	r := startRouter(t, clusterBlock("main", rabbit.URL()))
	r.waitCluster(t, "main", true, 30*time.Second)
	_, body, err := r.get("/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Clusters []map[string]any `json:"clusters"`
	}
	if err := json.Unmarshal(body, &st); err != nil || len(st.Clusters) != 1 {
		t.Fatalf("status clusters: %v\n%s", err, body)
	}
	var goNames []string
	for key := range st.Clusters[0] {
		if strings.ToLower(key) != key {
			goNames = append(goNames, key)
		}
	}
	if len(goNames) > 0 {
		slices.Sort(goNames)
		t.Fatalf("status cluster fields %v are not snake_case like the rest of the status: %s", goNames, mustJSON(st.Clusters[0]))
	}
	for _, key := range []string{"name", "connected"} {
		if _, ok := st.Clusters[0][key]; !ok {
			t.Errorf("status cluster entry has no %q field: %s", key, mustJSON(st.Clusters[0]))
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
