package router

import (
	"context"
	"log/slog"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/metrics"
)

// failoverPublisher sends to the first healthy cluster in list order. A publish that finds its
// cluster down moves to the next one; a cluster earlier in the list that is back takes over
// again at the next publish. Confirms stay with the cluster that got the message, so a switch
// never loses one: what the lost connection took with it comes back as an outage and is resent.
type failoverPublisher struct {
	target  string
	pubs    []*clusterPublisher
	metrics *metrics.Metrics
	log     *slog.Logger

	mu      sync.Mutex
	current int
}

var _ publisher = (*failoverPublisher)(nil)

func newFailoverPublisher(target string, pubs []*clusterPublisher, m *metrics.Metrics, log *slog.Logger) *failoverPublisher {
	return &failoverPublisher{target: target, pubs: pubs, metrics: m, log: log.With("target", target)}
}

func (f *failoverPublisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (confirmation, error) {
	var lastErr error
	for i, p := range f.pubs {
		if !p.cluster.Publishable() {
			continue
		}
		c, err := p.Publish(ctx, exchange, key, msg)
		if err != nil {
			lastErr = err
			continue
		}
		f.use(i)
		return c, nil
	}
	if lastErr == nil {
		lastErr = errNoClusterUp
	}
	return nil, lastErr
}

func (f *failoverPublisher) use(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i == f.current {
		return
	}
	f.log.Warn("failover: switching cluster", "from", f.pubs[f.current].Cluster(), "to", f.pubs[i].Cluster())
	f.metrics.FailoverSwitches.WithLabelValues(f.target).Inc()
	f.current = i
}

// WaitReady returns as soon as any of the clusters can take a publish.
func (f *failoverPublisher) WaitReady(ctx context.Context) error {
	for {
		waits := make([]<-chan struct{}, 0, len(f.pubs))
		for _, p := range f.pubs {
			if p.cluster.Publishable() {
				return nil
			}
			waits = append(waits, p.cluster.Changed())
		}
		if err := waitAny(ctx, waits); err != nil {
			return err
		}
	}
}

// Hold holds every cluster's connection: any of them may take the burst.
func (f *failoverPublisher) Hold() func() {
	releases := make([]func(), len(f.pubs))
	for i, p := range f.pubs {
		releases[i] = p.Hold()
	}
	return func() {
		for _, release := range releases {
			release()
		}
	}
}

func (f *failoverPublisher) Cluster() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pubs[f.current].Cluster()
}

func (f *failoverPublisher) Close() error {
	for _, p := range f.pubs {
		_ = p.Close()
	}
	return nil
}

func waitAny(ctx context.Context, chans []<-chan struct{}) error {
	done := make(chan struct{})
	defer close(done)
	fired := make(chan struct{}, len(chans))
	for _, ch := range chans {
		go func() {
			select {
			case <-ch:
				fired <- struct{}{}
			case <-done:
			}
		}()
	}
	select {
	case <-fired:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
