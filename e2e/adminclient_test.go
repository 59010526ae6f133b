package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/adminapi"
)

// httpClient bounds the tests' requests to the admin API, generously (see adminapi).
var httpClient = &http.Client{Timeout: 30 * time.Second}

// get fetches http://admin/path and returns the status code and body.
var get = adminapi.Get

func readyz(admin string) (int, []byte) {
	code, body, _ := get(admin, "/readyz")
	return code, body
}

// waitReady waits until /readyz answers 200.
func waitReady(t testing.TB, admin string, timeout time.Duration) {
	t.Helper()
	var last []byte
	waitFor(t, timeout, func() bool {
		code, body := readyz(admin)
		last = body
		return code == http.StatusOK
	}, func() string { return fmt.Sprintf("router at %s not ready: %s", admin, last) })
}

// status is the part of /api/v1/status the tests read.
type status = adminapi.Status

// getStatus fetches /api/v1/status, failing the test if it cannot.
var getStatus = adminapi.GetStatus

// waitSettled waits until the log holds at least minEvents events and every stream's position
// is the log's last seq: everything logged is delivered (or dead-lettered), so the targets
// hold all they will get. It returns that status.
func waitSettled(t testing.TB, admin string, minEvents uint64, timeout time.Duration) status {
	t.Helper()
	var st status
	waitFor(t, timeout, func() bool {
		st = getStatus(t, admin)
		return st.Settled(minEvents)
	}, func() string {
		b, _ := json.Marshal(st)
		return fmt.Sprintf("deliveries never caught up with the log (want at least %d events): %s", minEvents, b)
	})
	return st
}

// waitCluster waits until the status reports cluster connected (or not).
func waitCluster(t testing.TB, admin, cluster string, connected bool, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() bool {
		for _, c := range getStatus(t, admin).Clusters {
			if c.Name == cluster {
				return c.Connected == connected
			}
		}
		return false
	}, func() string { return fmt.Sprintf("cluster %s never reported connected=%v", cluster, connected) })
}

// scrape fetches /metrics.
func scrape(t testing.TB, admin string) string {
	t.Helper()
	code, body, err := get(admin, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	return string(body)
}

// metricValue finds the sample of name whose labels include want, in Prometheus text format.
func metricValue(text, name string, want map[string]string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := cutLast(line, " ")
		if !ok {
			continue
		}
		metric, labels, _ := strings.Cut(series, "{")
		if metric != name || !labelsInclude(strings.TrimSuffix(labels, "}"), want) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		return v, err == nil
	}
	return 0, false
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// labelsInclude reports whether the label list `a="x",b="y"` has every pair of want.
func labelsInclude(list string, want map[string]string) bool {
	have := map[string]string{}
	for _, pair := range strings.Split(list, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if ok {
			have[k] = strings.Trim(v, `"`)
		}
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// metricIs fails the test unless the sample of name with labels has value want.
func metricIs(t testing.TB, text, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := metricValue(text, name, labels)
	if !ok {
		t.Errorf("metric %s%v not exported", name, labels)
		return
	}
	if got != want {
		t.Errorf("metric %s%v = %v, want %v", name, labels, got, want)
	}
}
