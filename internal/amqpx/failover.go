package amqpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/wasmrouter/wasmrouter/event"
)

// errNoClusterUp is the outage of a failover target with no cluster connected.
var errNoClusterUp = fmt.Errorf("no cluster of the target is connected: %w", event.ErrUnreachable)

// FailoverPublisher sends to the first healthy cluster in list order. A publish that finds its
// cluster down moves to the next one; a cluster earlier in the list that is back takes over
// again at the next publish. Confirms stay with the cluster that got the message, so a switch
// never loses one: what the lost connection took with it comes back as an outage and is resent.
type FailoverPublisher struct {
	target   string
	pubs     []*TargetPublisher
	switched func() // counts a switch (the target's metric); may be nil
	log      *slog.Logger

	mu      sync.Mutex
	current int
}

// NewFailoverPublisher publishes for target over pubs, in order of preference.
func NewFailoverPublisher(target string, pubs []*TargetPublisher, switched func(), log *slog.Logger) *FailoverPublisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FailoverPublisher{target: target, pubs: pubs, switched: switched, log: log.With("target", target)}
}

// Publish sends m on the first cluster that can take it.
func (f *FailoverPublisher) Publish(ctx context.Context, m *event.Message) (event.Confirmation, error) {
	var lastErr error
	for i, p := range f.pubs {
		if !p.cluster.Publishable() {
			continue
		}
		c, err := p.Publish(ctx, m)
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

// TakesEncodedHeaders says that Publish sends a message's EncodedHeaders as they are (every
// cluster's publisher does).
func (f *FailoverPublisher) TakesEncodedHeaders() bool { return true }

func (f *FailoverPublisher) use(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i == f.current {
		return
	}
	f.log.Warn("failover: switching cluster", "from", f.pubs[f.current].Cluster(), "to", f.pubs[i].Cluster())
	if f.switched != nil {
		f.switched()
	}
	f.current = i
}

// WaitReady returns as soon as any of the clusters can take a publish.
func (f *FailoverPublisher) WaitReady(ctx context.Context) error {
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
func (f *FailoverPublisher) Hold() func() {
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

// Cluster names the cluster that takes the publishes now.
func (f *FailoverPublisher) Cluster() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pubs[f.current].Cluster()
}

// Close closes every cluster's publisher.
func (f *FailoverPublisher) Close() error {
	var errs []error
	for _, p := range f.pubs {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
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
