package multicluster

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/adminapi"
)

// status is the part of /api/v1/status the tests read, with the lookups they use.
type status struct{ adminapi.Status }

// clusterStatus is one cluster's connection state (its JSON names are pinned by
// TestStatusClusterFieldNames).
type clusterStatus = adminapi.ClusterStatus

func (r *routerRun) status(t testing.TB) status {
	t.Helper()
	return status{adminapi.GetStatus(t, r.Admin)}
}

// cluster is the named cluster's state; the test fails if the status does not list it.
func (s status) cluster(t testing.TB, name string) clusterStatus {
	t.Helper()
	for _, c := range s.Clusters {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("status lists no cluster %q: %+v", name, s.Clusters)
	return clusterStatus{}
}

// streamLag is the lag of the stream of route to target (label as in metrics: "out@dr" for a
// cluster of an "all" target).
func (s status) streamLag(route, target, cluster string) (uint64, bool) {
	for _, st := range s.Streams {
		if st.Route == route && st.Target == target && (cluster == "" || st.Cluster == cluster) {
			return st.Lag, true
		}
	}
	return 0, false
}

// waitCluster waits until the status reports cluster connected (or not) and returns its state.
func (r *routerRun) waitCluster(t testing.TB, cluster string, connected bool, timeout time.Duration) clusterStatus {
	t.Helper()
	var c clusterStatus
	waitFor(t, timeout, func() bool {
		c = r.status(t).cluster(t, cluster)
		return c.Connected == connected
	}, func() string {
		return fmt.Sprintf("cluster %s never reported connected=%v: %+v", cluster, connected, c)
	})
	return c
}

// metric is the value of the sample of name whose labels include want; a metric the router
// does not export fails the test (a renamed metric must not make a check pass as 0).
func (r *routerRun) metric(t testing.TB, name string, want map[string]string) float64 {
	t.Helper()
	code, body, err := r.get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	v, ok := metricValue(string(body), name, want)
	if !ok {
		t.Fatalf("metric %s%v is not exported", name, want)
	}
	return v
}

// metricValue finds the sample of name whose labels include want, in Prometheus text format.
func metricValue(text, name string, want map[string]string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		labels, value := "", rest
		if strings.HasPrefix(rest, "{") {
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			labels, value = ","+rest[1:end], rest[end+1:]
		}
		match := true
		for k, v := range want {
			if !strings.Contains(labels, ","+k+"="+strconv.Quote(v)) {
				match = false
			}
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err == nil {
			return f, true
		}
	}
	return 0, false
}
