package store

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMaxSizeIsExported(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	m.MaxSize.Set(1 << 30)
	if v := testutil.ToFloat64(m.MaxSize); v != 1<<30 {
		t.Errorf("router_store_max_size_bytes %v", v)
	}
}
