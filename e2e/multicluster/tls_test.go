package multicluster

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbitnode"
)

// tlsClusterBlock is a cluster block with a tls block (serverName "" leaves it out).
func tlsClusterBlock(name, url, caFile, serverName string) string {
	tls := "    ca_file = " + hclString(caFile) + "\n"
	if serverName != "" {
		tls += "    server_name = " + hclString(serverName) + "\n"
	}
	return fmt.Sprintf("cluster %s {\n  url = %s\n  tls {\n%s  }\n}\n", hclString(name), hclString(url), tls)
}

// TestTLSClusters delivers to a cluster over amqps verified against the node's CA, while two
// clusters on the same listener fail verification (an unrelated CA, a server_name the
// certificate does not carry): they never connect, report an x509 error naming the cluster,
// and their events wait in the log.
func TestTLSClusters(t *testing.T) {
	node := second.Node(t)
	mainURL := rabbit.URL()
	otherCA := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := rabbitnode.WriteCA(otherCA); err != nil {
		t.Fatal(err)
	}
	in, queue := rabbit.Unique("mc.tls.in"), rabbit.Unique("mc.tls.router")
	out, outBadCA, outBadName := rabbit.Unique("mc.tls.out"), rabbit.Unique("mc.tls.badca"), rabbit.Unique("mc.tls.badname")
	deleteAtCleanup(t, mainURL, []string{in}, []string{queue})
	deleteAtCleanup(t, node.URL(), []string{outBadCA, outBadName}, nil)
	got := newSink(t, "tls", node.URL(), out)
	r := startRouter(t, clusterBlock("main", mainURL)+
		tlsClusterBlock("tls_ok", node.TLSURL(), node.CAFile(), "")+
		tlsClusterBlock("tls_badca", node.TLSURL(), otherCA, "")+
		tlsClusterBlock("tls_badname", node.TLSURL(), node.CAFile(), "rabbit.example")+
		sourceBlock("in", "main", in, queue)+
		targetBlock("ok", "tls_ok", out)+
		targetBlock("badca", "tls_badca", outBadCA)+
		targetBlock("badname", "tls_badname", outBadName)+
		routeBlock("r", "in", "ok", "badca", "badname"))
	r.waitReady(t, 30*time.Second)
	r.waitCluster(t, "tls_ok", true, 30*time.Second)

	f := newFeeder(t, mainURL, in, "tls")
	f.publish(10)
	got.waitAll(t, f, 1, 10, 20*time.Second)

	// A few attempts each, so that "never connects" is more than a first failure.
	waitFor(t, 20*time.Second, func() bool {
		return failedAttempts(r, "tls_badca") >= 3 && failedAttempts(r, "tls_badname") >= 3
	}, func() string { return "the misconfigured TLS clusters were not retried 3 times each" })
	st := r.status(t)
	for _, tc := range []struct{ cluster, want string }{
		{"tls_badca", "unknown authority"},
		{"tls_badname", "rabbit.example"},
	} {
		c := st.cluster(t, tc.cluster)
		t.Logf("cluster %s: last_error %q", tc.cluster, c.LastError)
		if c.Connected || c.Reconnects != 0 {
			t.Errorf("cluster %s connected (%v, %d connections) despite failing verification", tc.cluster, c.Connected, c.Reconnects)
		}
		if !strings.Contains(c.LastError, "x509") && !strings.Contains(c.LastError, "certificate") {
			t.Errorf("cluster %s last_error %q: want an x509 certificate error", tc.cluster, c.LastError)
		}
		if !strings.Contains(c.LastError, tc.cluster) || !strings.Contains(c.LastError, tc.want) {
			t.Errorf("cluster %s last_error %q: want it to name the cluster and say %q", tc.cluster, c.LastError, tc.want)
		}
		if strings.Contains(c.LastError, "guest:guest") {
			t.Errorf("cluster %s last_error shows the password: %q", tc.cluster, c.LastError)
		}
		if v := r.metric(t, "router_broker_connected", map[string]string{"cluster": tc.cluster}); v != 0 {
			t.Errorf("router_broker_connected{cluster=%q} = %v", tc.cluster, v)
		}
		if !logHas(r, "cluster="+tc.cluster, "x509") {
			t.Errorf("no log line names cluster %s with an x509 error", tc.cluster)
		}
	}
	for _, target := range []string{"badca", "badname"} {
		if lag, ok := st.streamLag("r", target, ""); !ok || lag < 10 {
			t.Errorf("stream r -> %s: lag %d (listed %v), want the 10 events waiting", target, lag, ok)
		}
	}
	if v := r.metric(t, "router_events_dead_lettered_total", map[string]string{"route": "r"}); v != 0 {
		t.Errorf("router_events_dead_lettered_total{route=\"r\"} = %v: an unreachable cluster is an outage, not a failure", v)
	}
	if strings.Contains(r.Logs.String(), "guest:guest") {
		t.Error("the router log shows a cluster password")
	}
}

// failedAttempts counts the router's log lines about failing to connect to cluster.
func failedAttempts(r *routerRun, cluster string) int {
	n := 0
	for _, line := range strings.Split(r.Logs.String(), "\n") {
		if strings.Contains(line, "cannot connect to the broker") && strings.Contains(line, "cluster="+cluster+" ") {
			n++
		}
	}
	return n
}

// logHas reports whether one line of the router's log holds all of parts.
func logHas(r *routerRun, parts ...string) bool {
	for _, line := range strings.Split(r.Logs.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
