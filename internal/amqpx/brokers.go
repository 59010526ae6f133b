package amqpx

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// Brokers are the clusters of a configuration, and the sources and target publishers the
// engine's ports take, built over them. A reload changes them (see Prepare): the set in force
// is read under mu.
type Brokers struct {
	opts Options

	mu       sync.Mutex
	cfg      *config.Config
	clusters map[string]*Cluster
	runs     map[*Cluster]*clusterRun
	root     context.Context // Connect's; nil before
	wg       sync.WaitGroup  // every cluster's Run
}

// clusterRun is one cluster connection running under Connect.
type clusterRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	// cfg is the configuration whose target exchanges each (re)connect declares.
	cfg atomic.Pointer[config.Config]
}

// NewBrokers prepares a connection per cluster of cfg; Connect dials them.
func NewBrokers(cfg *config.Config, opts Options) (*Brokers, error) {
	b := &Brokers{cfg: cfg, opts: opts, clusters: make(map[string]*Cluster, len(cfg.Clusters)), runs: map[*Cluster]*clusterRun{}}
	for _, cs := range cfg.Clusters {
		c, err := NewCluster(cs, opts)
		if err != nil {
			return nil, cfg.Errorf("cluster."+cs.Name+".url", "%w", err)
		}
		b.clusters[cs.Name] = c
	}
	return b, nil
}

// Cluster is the cluster named name in force, or nil.
func (b *Brokers) Cluster(name string) *Cluster {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.clusters[name]
}

// Connect runs every cluster's connections, declaring the target exchanges on each (re)connect,
// and returns the function that disconnects them (those a reload added too).
func (b *Brokers) Connect() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	b.mu.Lock()
	b.root = ctx
	for _, c := range b.clusters {
		b.startLocked(c, b.cfg)
	}
	b.mu.Unlock()
	return func() { cancel(); b.wg.Wait() }
}

// startLocked runs c under Connect's context, declaring the exchanges that cfg's targets have
// on it at every (re)connect (the caller holds b.mu).
func (b *Brokers) startLocked(c *Cluster, cfg *config.Config) *clusterRun {
	ctx, cancel := context.WithCancel(b.root)
	run := &clusterRun{cancel: cancel, done: make(chan struct{})}
	run.cfg.Store(cfg)
	b.runs[c] = run
	c.OnConnect(func(conn *amqp.Connection) error {
		if exchanges := exchangesOn(run.cfg.Load(), c.Name()); len(exchanges) > 0 {
			return declareExchanges(conn, exchanges)
		}
		return nil
	})
	b.wg.Add(1)
	go func() { defer b.wg.Done(); defer close(run.done); c.Run(ctx) }()
	return run
}

// exchangesOn lists the exchanges of cfg's targets on a cluster.
func exchangesOn(cfg *config.Config, cluster string) []string {
	var out []string
	for _, t := range cfg.Targets {
		if slices.Contains(t.Clusters, cluster) {
			out = append(out, t.Exchange)
		}
	}
	return out
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
func (b *Brokers) Statuses() []event.ClusterStatus {
	b.mu.Lock()
	cfg, clusters := b.cfg, b.clusters
	b.mu.Unlock()
	out := make([]event.ClusterStatus, 0, len(cfg.Clusters))
	for _, cs := range cfg.Clusters {
		out = append(out, clusters[cs.Name].Status())
	}
	return out
}

// view is one configuration with its cluster connections: what sources and publishers are
// built from (the set in force, or a reload's candidate).
type view struct {
	cfg      *config.Config
	clusters map[string]*Cluster
	opts     Options
}

func (b *Brokers) current() view {
	b.mu.Lock()
	defer b.mu.Unlock()
	return view{cfg: b.cfg, clusters: b.clusters, opts: b.opts}
}

// Source is the source block named name, consumed from its cluster.
func (b *Brokers) Source(name string) (*Source, error) { return b.current().source(name) }

func (v view) source(name string) (*Source, error) {
	for _, s := range v.cfg.Sources {
		if s.Name == name {
			c := v.clusters[s.Cluster]
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
	return b.current().publishers(target)
}

func (v view) publishers(target string) ([]StreamPublisher, error) {
	tgt := v.cfg.Target(target)
	if tgt == nil {
		return nil, fmt.Errorf("no target %q", target)
	}
	plain := make([]*TargetPublisher, 0, len(tgt.Clusters))
	for _, cn := range tgt.Clusters {
		c := v.clusters[cn]
		if c == nil {
			return nil, fmt.Errorf("target %s: no cluster %q", target, cn)
		}
		plain = append(plain, NewTargetPublisher(c, v.login(cn)))
	}
	if tgt.Mode == config.ModeFailover {
		var switched func()
		if m := v.opts.Metrics; m != nil {
			counter := m.FailoverSwitches.WithLabelValues(target)
			switched = counter.Inc
		}
		return []StreamPublisher{NewFailoverPublisher(target, plain, switched, v.opts.Logger)}, nil
	}
	out := make([]StreamPublisher, len(plain))
	for i, p := range plain {
		out[i] = p
	}
	return out, nil
}

func (v view) login(cluster string) string {
	if cs := v.cfg.Cluster(cluster); cs != nil {
		return Login(*cs)
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
