package amqpx

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the broker connections' collectors (docs/metrics.md).
type Metrics struct {
	BrokerConnected  *prometheus.GaugeVec   // {cluster}
	BrokerReconnects *prometheus.CounterVec // {cluster}
	FailoverSwitches *prometheus.CounterVec // {target}
}

// NewMetrics creates the connections' collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		BrokerConnected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "router_broker_connected", Help: "1 while the cluster's connection is up.",
		}, []string{"cluster"}),
		BrokerReconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "router_broker_reconnects_total", Help: "Connections (re)established.",
		}, []string{"cluster"}),
		FailoverSwitches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "router_failover_switches_total", Help: "Failover targets switching cluster.",
		}, []string{"target"}),
	}
	reg.MustRegister(m.BrokerConnected, m.BrokerReconnects, m.FailoverSwitches)
	return m
}
