package routertest

import (
	"context"
	"fmt"
	"sync"

	"github.com/wasmrouter/wasmrouter/event"
)

// Target is an in-memory broker for the engine's publishers: it keeps what it confirmed per
// exchange, can refuse messages, go down (an outage) and hold its confirmations back.
type Target struct {
	name string

	mu       sync.Mutex
	received map[string][]event.Message
	refuse   func(*event.Message) error
	down     bool
	manual   bool
	pending  []*confirmation
	changed  chan struct{}
	holds    int
	panicky  func(*event.Message) bool
}

// NewTarget returns a target that is up and confirms every message at once; name is its
// cluster's.
func NewTarget(name string) *Target {
	return &Target{name: name, received: map[string][]event.Message{}, changed: make(chan struct{})}
}

// Refuse makes the target refuse the messages for which why returns an error (nil: refuse none).
func (t *Target) Refuse(why func(*event.Message) error) {
	t.mu.Lock()
	t.refuse = why
	t.mu.Unlock()
}

// PanicOn makes Publish panic for the messages pred selects (nil: none), to test that a panic
// on the event path is one event's failure.
func (t *Target) PanicOn(pred func(*event.Message) bool) {
	t.mu.Lock()
	t.panicky = pred
	t.mu.Unlock()
}

// SetDown takes the target down (publishes fail, confirmations waiting resolve as an outage)
// or up again.
func (t *Target) SetDown(down bool) {
	t.mu.Lock()
	t.down = down
	var lost []*confirmation
	if down {
		lost, t.pending = t.pending, nil
	}
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
	for _, c := range lost {
		c.resolve(fmt.Errorf("%s: connection lost before the confirm: %w", t.name, event.ErrUnreachable))
	}
}

// HoldConfirms keeps confirmations back until Confirm (true), or resolves them at once (false).
func (t *Target) HoldConfirms(hold bool) {
	t.mu.Lock()
	t.manual = hold
	t.mu.Unlock()
	if !hold {
		t.Confirm(-1)
	}
}

// Confirm confirms the n oldest confirmations held back (n < 0: all), in order.
func (t *Target) Confirm(n int) int {
	t.mu.Lock()
	if n < 0 || n > len(t.pending) {
		n = len(t.pending)
	}
	now := t.pending[:n]
	t.pending = append([]*confirmation(nil), t.pending[n:]...)
	for _, c := range now {
		t.received[c.msg.Exchange] = append(t.received[c.msg.Exchange], c.msg)
	}
	t.mu.Unlock()
	for _, c := range now {
		c.resolve(nil)
	}
	return len(now)
}

// Unconfirmed counts the confirmations held back.
func (t *Target) Unconfirmed() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// Received are the messages the target confirmed on exchange, in order.
func (t *Target) Received(exchange string) []event.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]event.Message(nil), t.received[exchange]...)
}

// Holds counts the batches publishers held.
func (t *Target) Holds() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.holds
}

// Publisher opens a publisher for one delivery stream.
func (t *Target) Publisher() *Publisher { return &Publisher{t: t} }

// Publisher is one stream's publisher on a Target.
type Publisher struct {
	t      *Target
	closed bool
}

// Publish sends m (see router.Publisher).
func (p *Publisher) Publish(ctx context.Context, m *event.Message) (event.Confirmation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t := p.t
	t.mu.Lock()
	if t.panicky != nil && t.panicky(m) {
		t.mu.Unlock()
		panic("routertest: publish panics for this message")
	}
	if p.closed {
		t.mu.Unlock()
		return nil, fmt.Errorf("publisher closed: %w", event.ErrUnreachable)
	}
	if t.down {
		t.mu.Unlock()
		return nil, fmt.Errorf("%s: not connected: %w", t.name, event.ErrUnreachable)
	}
	c := &confirmation{done: make(chan struct{}), msg: copyMessage(m)}
	if t.refuse != nil {
		if why := t.refuse(m); why != nil {
			t.mu.Unlock()
			c.resolve(fmt.Errorf("%s: %w: %v", t.name, event.ErrRefused, why))
			return c, nil
		}
	}
	if t.manual {
		t.pending = append(t.pending, c)
		t.mu.Unlock()
		return c, nil
	}
	t.received[m.Exchange] = append(t.received[m.Exchange], c.msg)
	t.mu.Unlock()
	c.resolve(nil)
	return c, nil
}

// copyMessage keeps all of m: a publisher keeps nothing of a message past Publish
// (router.Publisher), strings included.
func copyMessage(m *event.Message) event.Message { return m.Clone() }

// WaitReady waits until the target is up.
func (p *Publisher) WaitReady(ctx context.Context) error {
	for {
		p.t.mu.Lock()
		down, changed := p.t.down, p.t.changed
		p.t.mu.Unlock()
		if !down {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Hold counts a batch; the fake has no writes to gather.
func (p *Publisher) Hold() (release func()) {
	p.t.mu.Lock()
	p.t.holds++
	p.t.mu.Unlock()
	return func() {}
}

// Cluster is the target's name.
func (p *Publisher) Cluster() string { return p.t.name }

// Close ends the publisher.
func (p *Publisher) Close() error {
	p.t.mu.Lock()
	p.closed = true
	p.t.mu.Unlock()
	return nil
}

type confirmation struct {
	done chan struct{}
	err  error
	msg  event.Message
}

func (c *confirmation) resolve(err error) {
	c.err = err
	close(c.done)
}

func (c *confirmation) Done() <-chan struct{} { return c.done }

func (c *confirmation) Err() error {
	<-c.done
	return c.err
}
