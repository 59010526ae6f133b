package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/amqpx"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// TestBrokerConnectionLoss has the broker close the router's connections (and the test's own)
// while messages flow; the router must recover by itself and deliver every message.
//
// By default only this test's connections are closed, so that tests of other packages sharing
// the broker are not disturbed; WASMROUTER_E2E_CLOSE_ALL=1 closes every connection on the
// broker (rabbitmqctl close_all_connections) instead.
func TestBrokerConnectionLoss(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	tgtX := rabbit.Unique("e2e.out")
	out := collect(t, targetQueue(t, tgtX))
	cluster := strings.ReplaceAll(rabbit.Unique("e2e_conn"), ".", "_")
	cfg := clusterBlock(cluster, rabbit.URL()) + sourceBlock("in", cluster, srcX, srcQ) +
		targetBlock("out", cluster, tgtX) + `
route "all" {
  source  = "in"
  targets = ["out"]
}
`
	r := startRouter(t, writeConfig(t, dir, cfg))

	traffic := publishUntilEnd(t, srcX, "loss", "conn.loss", 1000)
	out.waitCount(t, "before the connections close", 300, 30*time.Second)
	if os.Getenv("WASMROUTER_E2E_CLOSE_ALL") == "1" {
		rabbit.CloseAllConnections(t)
	} else {
		names := append(amqpx.ConnectionNames(cluster), clientName)
		closed := rabbit.CloseNamedConnections(t, names...)
		for _, name := range names {
			if closed[name] == 0 {
				t.Fatalf("the broker closed %v; want the router's connections and the test's own", closed)
			}
		}
	}
	// Traffic goes on after the loss: the router must deliver what is published from now.
	afterLoss := out.count()
	out.waitCount(t, "after the connections closed", afterLoss+500, 60*time.Second)
	ids, err := traffic.end()
	if err != nil {
		t.Fatal(err)
	}
	out.waitIDs(t, "target out", ids, 60*time.Second)
	if dups := out.duplicates(); len(dups) > 0 {
		t.Logf("%d of %d messages arrived more than once (at least once delivery)", len(dups), len(ids))
	}
	waitReady(t, r.Admin, 30*time.Second)

	logs := r.Logs.String()
	if !strings.Contains(logs, "connection to the broker lost") {
		t.Errorf("the router never saw its connection close; the test proves nothing")
	}
	m := scrape(t, r.Admin)
	if n, _ := metricValue(m, "router_broker_reconnects_total", map[string]string{"cluster": cluster}); n < 4 {
		t.Errorf("router_broker_reconnects_total = %v, want at least 4 (both connections made again after the loss)", n)
	}
	metricIs(t, m, "router_broker_connected", map[string]string{"cluster": cluster}, 1)
	t.Logf("%d messages published, all delivered; %d deliveries in all", len(ids), out.count())
}
