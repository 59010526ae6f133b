package amqpx

import (
	"context"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// Brokers are the clusters of a configuration, and the sources and target publishers the
// engine's ports take, built over them.
type Brokers struct {
	cfg      *config.Config
	opts     Options
	clusters map[string]*Cluster
}

// NewBrokers prepares a connection per cluster of cfg; Connect dials them.
func NewBrokers(cfg *config.Config, opts Options) (*Brokers, error) {
	b := &Brokers{cfg: cfg, opts: opts, clusters: make(map[string]*Cluster, len(cfg.Clusters))}
	for _, cs := range cfg.Clusters {
		c, err := NewCluster(cs, opts)
		if err != nil {
			return nil, cfg.Errorf("cluster."+cs.Name+".url", "%w", err)
		}
		b.clusters[cs.Name] = c
	}
	return b, nil
}

// Cluster is the cluster named name, or nil.
func (b *Brokers) Cluster(name string) *Cluster { return b.clusters[name] }

// Connect runs every cluster's connection, declaring the target exchanges on each (re)connect,
// and returns the function that disconnects them.
func (b *Brokers) Connect() (stop func()) {
	byCluster := map[string][]string{}
	for _, t := range b.cfg.Targets {
		for _, cn := range t.Clusters {
			byCluster[cn] = append(byCluster[cn], t.Exchange)
		}
	}
	for cn, exchanges := range byCluster {
		if c := b.clusters[cn]; c != nil {
			c.OnConnect(func(conn *amqp.Connection) error { return declareExchanges(conn, exchanges) })
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, c := range b.clusters {
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
	}
	return func() { cancel(); wg.Wait() }
}

// declareExchanges declares target exchanges on a fresh connection.
func declareExchanges(conn *amqp.Connection, exchanges []string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	for _, x := range exchanges {
		if err := DeclareExchange(ch, x); err != nil {
			return err
		}
	}
	return nil
}

// Statuses are the clusters' states, in configuration order.
func (b *Brokers) Statuses() []Status {
	out := make([]Status, 0, len(b.cfg.Clusters))
	for _, cs := range b.cfg.Clusters {
		out = append(out, b.clusters[cs.Name].Status())
	}
	return out
}

// Source is the source block named name, consumed from its cluster.
func (b *Brokers) Source(name string) (*Source, error) {
	for _, s := range b.cfg.Sources {
		if s.Name == name {
			c := b.clusters[s.Cluster]
			if c == nil {
				return nil, fmt.Errorf("source %s: no cluster %q", name, s.Cluster)
			}
			return &Source{cluster: c, spec: s}, nil
		}
	}
	return nil, fmt.Errorf("no source %q", name)
}

// StreamPublisher is what Publishers returns: a TargetPublisher or a FailoverPublisher.
type StreamPublisher interface {
	Publish(ctx context.Context, m *event.Message) (event.Confirmation, error)
	WaitReady(ctx context.Context) error
	Hold() (release func())
	Cluster() string
	Close() error
}

// Publishers opens the publishers of one delivery stream per cluster the target needs: one for a
// single cluster or a failover list, one per cluster in "all" mode (each a stream of its own).
func (b *Brokers) Publishers(target string) ([]StreamPublisher, error) {
	var tgt *config.TargetSpec
	for i := range b.cfg.Targets {
		if b.cfg.Targets[i].Name == target {
			tgt = &b.cfg.Targets[i]
		}
	}
	if tgt == nil {
		return nil, fmt.Errorf("no target %q", target)
	}
	plain := make([]*TargetPublisher, 0, len(tgt.Clusters))
	for _, cn := range tgt.Clusters {
		c := b.clusters[cn]
		if c == nil {
			return nil, fmt.Errorf("target %s: no cluster %q", target, cn)
		}
		plain = append(plain, NewTargetPublisher(c, b.login(cn)))
	}
	if tgt.Mode == config.ModeFailover {
		var switched func()
		if m := b.opts.Metrics; m != nil {
			counter := m.FailoverSwitches.WithLabelValues(target)
			switched = counter.Inc
		}
		return []StreamPublisher{NewFailoverPublisher(target, plain, switched, b.opts.Logger)}, nil
	}
	out := make([]StreamPublisher, len(plain))
	for i, p := range plain {
		out[i] = p
	}
	return out, nil
}

func (b *Brokers) login(cluster string) string {
	for _, cs := range b.cfg.Clusters {
		if cs.Name == cluster {
			return Login(cs)
		}
	}
	return ""
}

// Source consumes one source block's queue: the engine's source port over Consume.
type Source struct {
	cluster *Cluster
	spec    config.SourceSpec
}

// Consume consumes until ctx ends (see the package function Consume): deliver gets each
// delivery in order, consuming reports whether the consumer is up, undecodable each message the
// client could not decode (the broker redelivers it).
func (s *Source) Consume(ctx context.Context, deliver func(*event.Delivery), consuming func(up bool), undecodable func(error)) error {
	return Consume(ctx, s.cluster, s.spec, func(d *Delivery) { deliver(&d.Delivery) }, consuming, WithDecodeErrorHook(undecodable))
}
