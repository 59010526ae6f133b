package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// TestRoutesShareChannelsWithinChannelMax runs twelve routes to twelve targets on a cluster
// whose connections negotiate a channel_max of 8 with the broker: every route delivers (the
// streams share the publishing connection's channels), the router is ready, and the status
// reports the limit and the sharing.
func TestRoutesShareChannelsWithinChannelMax(t *testing.T) {
	rabbit.SkipIfShort(t)
	const routes, channelMax = 12, 8
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	cluster := strings.ReplaceAll(rabbit.Unique("e2e_chmax"), ".", "_")
	cfg := clusterBlock(cluster, rabbit.URL()+"?channel_max="+fmt.Sprint(channelMax)) + sourceBlock("in", cluster, srcX, srcQ)
	outs := make([]*collector, routes)
	for i := range routes {
		tgtX := rabbit.Unique(fmt.Sprintf("e2e.chmax%d", i))
		outs[i] = collect(t, targetQueue(t, tgtX))
		cfg += targetBlock(fmt.Sprintf("out%d", i), cluster, tgtX) +
			fmt.Sprintf("route \"r%d\" {\n  source = \"in\"\n  targets = [\"out%d\"]\n}\n", i, i)
	}
	r := startRouter(t, writeConfig(t, dir, cfg))

	msgs, ids := numbered("chmax", "ch.max", 20)
	mustPublish(t, srcX, msgs...)
	for i, out := range outs {
		out.waitIDs(t, fmt.Sprintf("target out%d", i), ids, 60*time.Second)
	}
	waitReady(t, r.Admin, 10*time.Second)
	st := getStatus(t, r.Admin)
	b, _ := json.Marshal(st.Clusters)
	if len(st.Clusters) != 1 || len(st.Clusters[0].Connections) != 2 {
		t.Fatalf("status clusters: %s", b)
	}
	for _, c := range st.Clusters[0].Connections {
		if !c.Connected || c.ChannelMax != channelMax || c.Channels > channelMax {
			t.Errorf("%s connection: %+v, want channel_max %d and no more channels", c.Role, c, channelMax)
		}
		if c.Role == "publish" && (c.Publishers != routes || c.SharedChannels == 0) {
			t.Errorf("publishing connection: %+v, want %d publishers sharing channels", c, routes)
		}
	}
	// /readyz carries the same detail.
	if _, body := readyz(r.Admin); !strings.Contains(string(body), "12 delivery streams share") || !strings.Contains(string(body), "(channel_max 8)") {
		t.Errorf("/readyz does not say that the streams share channels: %s", body)
	}
}
