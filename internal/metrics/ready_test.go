package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestReadyFollowsItsSource(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	value := func() float64 {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "router_ready" {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("router_ready is not exported")
		return -1
	}
	if v := value(); v != 0 {
		t.Errorf("before SetReadiness: %v, want 0", v)
	}
	ready := false
	m.SetReadiness(func() bool { return ready })
	if v := value(); v != 0 {
		t.Errorf("not ready: %v, want 0", v)
	}
	ready = true
	if v := value(); v != 1 {
		t.Errorf("ready: %v, want 1", v)
	}
}
