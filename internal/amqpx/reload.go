package amqpx

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/config"
)

// ReadyTimeout bounds how long a reload waits for a new cluster to connect.
const ReadyTimeout = 10 * time.Second

// PrepareError is a reload refused while its brokers were made ready: Kind and Name say which
// block failed ("cluster", "target", "source"), so that the caller can point at it.
type PrepareError struct {
	Kind, Name string
	Err        error
}

func (e *PrepareError) Error() string { return fmt.Sprintf("%s %q: %v", e.Kind, e.Name, e.Err) }
func (e *PrepareError) Unwrap() error { return e.Err }

// Change is a reload's brokers, ready and not yet in force: the clusters next adds or whose
// block changed are connected, and the exchanges, queues and bindings of next's new or
// changed targets and sources are declared. Commit puts it in force, Abort undoes it.
type Change struct {
	b        *Brokers
	next     view
	fresh    map[string]*clusterRun // by cluster name: connections this change opened
	unbind   []binding              // bindings next no longer has, removed at Commit
	finished bool
}

type binding struct {
	cluster              *Cluster
	queue, exchange, key string
	source               string
}

// Prepare makes next's brokers ready without changing those in force. Clusters whose block is
// unchanged keep their connection (and everything on it keeps running).
func (b *Brokers) Prepare(ctx context.Context, next *config.Config) (*Change, error) {
	b.mu.Lock()
	old, cur, root := b.cfg, maps.Clone(b.clusters), b.root
	ch := &Change{b: b, next: view{cfg: next, clusters: map[string]*Cluster{}, opts: b.opts}, fresh: map[string]*clusterRun{}}
	if root == nil {
		b.mu.Unlock()
		return nil, errors.New("the brokers are not connected")
	}
	for _, cs := range next.Clusters {
		if prev := old.Cluster(cs.Name); prev != nil && sameCluster(*prev, cs) && cur[cs.Name] != nil {
			ch.next.clusters[cs.Name] = cur[cs.Name]
			continue
		}
		c, err := NewCluster(cs, b.opts)
		if err != nil {
			b.mu.Unlock()
			ch.Abort()
			return nil, &PrepareError{Kind: "cluster", Name: cs.Name, Err: err}
		}
		ch.next.clusters[cs.Name] = c
		ch.fresh[cs.Name] = b.startLocked(c, next)
	}
	b.mu.Unlock()
	if err := ch.declare(ctx, old, cur); err != nil {
		ch.Abort()
		return nil, err
	}
	return ch, nil
}

// declare connects the fresh clusters and declares what next's new or changed targets and
// sources need.
func (ch *Change) declare(ctx context.Context, old *config.Config, cur map[string]*Cluster) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	next := ch.next
	for _, cs := range next.cfg.Clusters {
		if ch.fresh[cs.Name] == nil {
			continue
		}
		if err := firstConnect(ctx, next.clusters[cs.Name]); err != nil {
			return &PrepareError{Kind: "cluster", Name: cs.Name, Err: fmt.Errorf("cannot connect: %w", err)}
		}
	}
	onFresh := func(clusters ...string) bool {
		return slices.ContainsFunc(clusters, func(cn string) bool { return ch.fresh[cn] != nil })
	}
	for _, t := range next.cfg.Targets {
		if prev := old.Target(t.Name); prev != nil && prev.Exchange == t.Exchange && slices.Equal(prev.Clusters, t.Clusters) && !onFresh(t.Clusters...) {
			continue
		}
		for _, cn := range t.Clusters {
			err := withChannel(ctx, next.clusters[cn], func(c *amqp.Channel) error { return DeclareExchange(c, t.Exchange) })
			if err != nil {
				return &PrepareError{Kind: "target", Name: t.Name, Err: err}
			}
		}
	}
	for _, s := range next.cfg.Sources {
		prev := old.Source(s.Name)
		if prev != nil && sameSource(*prev, s) && !onFresh(s.Cluster) {
			continue
		}
		err := withChannel(ctx, next.clusters[s.Cluster], func(c *amqp.Channel) error { return DeclareSource(c, s) })
		if err != nil {
			return &PrepareError{Kind: "source", Name: s.Name, Err: err}
		}
		// Bindings the source no longer has would keep routing messages to its queue.
		if prev != nil && prev.Queue == s.Queue && prev.Exchange == s.Exchange && prev.Cluster == s.Cluster && s.Exchange != "" {
			for _, key := range bindings(*prev) {
				if !slices.Contains(bindings(s), key) {
					ch.unbind = append(ch.unbind, binding{cluster: cur[s.Cluster], queue: s.Queue, exchange: s.Exchange, key: key, source: s.Name})
				}
			}
		}
	}
	return nil
}

// Replaced names the clusters whose connection this change opened (new, or their block
// changed): what runs on them must be built anew.
func (ch *Change) Replaced() map[string]bool {
	out := make(map[string]bool, len(ch.fresh))
	for name := range ch.fresh {
		out[name] = true
	}
	return out
}

// Source and Publishers are as the Brokers' own, for the next configuration.
func (ch *Change) Source(name string) (*Source, error) { return ch.next.source(name) }

func (ch *Change) Publishers(target string) ([]StreamPublisher, error) {
	return ch.next.publishers(target)
}

// Commit puts the change in force. A connection it replaces closes once no publisher uses it
// any more (a replay started before the reload finishes on it).
func (ch *Change) Commit() {
	retired, runs, ok := ch.finish(func(b *Brokers) []*Cluster {
		var retired []*Cluster
		for name, c := range b.clusters {
			if ch.next.clusters[name] != c {
				retired = append(retired, c)
			}
		}
		b.cfg, b.clusters = ch.next.cfg, ch.next.clusters
		for _, c := range b.clusters {
			if run := b.runs[c]; run != nil {
				run.cfg.Store(ch.next.cfg)
			}
		}
		return retired
	})
	if !ok {
		return
	}
	for i, run := range runs {
		go retire(retired[i], run)
	}
	for _, bd := range ch.unbind {
		err := withChannel(context.Background(), bd.cluster, func(c *amqp.Channel) error {
			return c.QueueUnbind(bd.queue, bd.key, bd.exchange, nil)
		})
		if err != nil {
			ch.b.opts.Logger.Warn("removing a binding the source no longer has", "source", bd.source,
				"queue", bd.queue, "key", bd.key, "error", err)
		}
	}
}

// retire closes a replaced connection once no publisher is open on it.
func retire(c *Cluster, run *clusterRun) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for c.publishers.Load() > 0 {
		select {
		case <-run.done: // the brokers are disconnecting
			return
		case <-tick.C:
		}
	}
	run.cancel()
	<-run.done
}

// Abort undoes Prepare: the connections it opened close.
func (ch *Change) Abort() {
	_, runs, _ := ch.finish(func(*Brokers) []*Cluster {
		fresh := make([]*Cluster, 0, len(ch.fresh))
		for name := range ch.fresh {
			fresh = append(fresh, ch.next.clusters[name])
		}
		return fresh
	})
	for _, run := range runs {
		run.cancel()
		<-run.done
	}
}

// finish ends the change, once (Commit and Abort may both be called): under the brokers' lock
// it calls drop, which settles the brokers and names the clusters left out of them (those a
// commit replaces, those an abort opened), and takes their connection runs out of the brokers,
// for the caller to stop outside the lock. ok is false when the change had already ended.
func (ch *Change) finish(drop func(b *Brokers) []*Cluster) (dropped []*Cluster, runs []*clusterRun, ok bool) {
	b := ch.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch.finished {
		return nil, nil, false
	}
	ch.finished = true
	for _, c := range drop(b) {
		if run := b.runs[c]; run != nil {
			dropped, runs = append(dropped, c), append(runs, run)
			delete(b.runs, c)
		}
	}
	return dropped, runs, true
}

// firstConnect waits for a new cluster's first connection attempt: a reload must not put in
// force a cluster that cannot be reached, nor wait out its reconnect backoff to find out.
func firstConnect(ctx context.Context, c *Cluster) error {
	// A failed dial records its error without a transition: look again now and then too.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		changed := c.Changed()
		if c.Connected() {
			return nil
		}
		if st := c.Status(); st.LastError != "" {
			return errors.New(st.LastError)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("not connected after %s", ReadyTimeout)
			}
			return ctx.Err()
		case <-changed:
		case <-tick.C:
		}
	}
}

// withChannel runs fn on a channel of its own on c's connection.
func withChannel(ctx context.Context, c *Cluster, fn func(*amqp.Channel) error) error {
	conn, err := c.Connection(ctx)
	if err != nil {
		return err
	}
	ch, err := c.OpenChannel(conn)
	if err != nil {
		return err
	}
	defer ch.Close()
	return fn(ch)
}

func sameCluster(a, b config.ClusterSpec) bool {
	return a.URL == b.URL && reflect.DeepEqual(a.TLS, b.TLS)
}

func sameSource(a, b config.SourceSpec) bool {
	a.Range, b.Range = config.SourceSpec{}.Range, config.SourceSpec{}.Range
	return reflect.DeepEqual(a, b)
}
