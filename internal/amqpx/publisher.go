package amqpx

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
)

var (
	// ErrNotConnected is an outage: there is no usable connection now. Publish again later.
	ErrNotConnected error = outageError("not connected to the broker")
	// ErrConnectionLost is an outage: the channel or connection went away before the broker
	// confirmed the publish. The broker may or may not have the message; publish it again.
	ErrConnectionLost error = outageError("connection lost before the broker confirmed")
	// ErrPublisherClosed is returned by Publish after Close.
	ErrPublisherClosed = errors.New("publisher closed")
)

// outageError is an outage the engine recognises as event.ErrUnreachable.
type outageError string

func (e outageError) Error() string        { return string(e) }
func (e outageError) Is(target error) bool { return target == event.ErrUnreachable }

// RefusedError means the broker refused this message: returned as unroutable under the
// mandatory flag, negatively confirmed, or its channel closed by a channel exception (an
// exchange that does not exist, a message over the broker's size limit). Retrying the same
// message will likely fail the same way.
type RefusedError struct {
	Reason string
	// Unroutable: the broker returned the message because no queue was bound to take it.
	Unroutable bool
}

func (e *RefusedError) Error() string { return "broker refused the message: " + e.Reason }

// Is makes a refusal match event.ErrRefused.
func (e *RefusedError) Is(target error) bool {
	return target == event.ErrRefused || (e.Unroutable && target == event.ErrUnroutable)
}

// IsOutage reports whether err says the broker could not be reached, as opposed to a refusal of
// the message: the caller should keep the message and publish it again later.
func IsOutage(err error) bool {
	return errors.Is(err, ErrNotConnected) || errors.Is(err, ErrConnectionLost)
}

// Publisher publishes on a confirm-mode channel of a cluster's publishing connection, pipelined:
// Publish returns as soon as the message is written and the Confirm resolves when the broker
// answers. It is meant for one delivery stream; Publish calls are serialised so that confirms
// resolve in publish order. The channel is its own unless the connection's channel_max makes
// publishers share (see pubPool).
type Publisher struct {
	c      *Cluster
	mu     sync.Mutex
	cur    *pubChannel
	closed bool
}

// NewPublisher returns a publisher on the cluster. It opens its channel lazily, on the first
// Publish and again after a loss.
func (c *Cluster) NewPublisher() *Publisher { return &Publisher{c: c} }

// Confirm is the outcome of one publish.
type Confirm struct {
	pc  *pubChannel
	dc  *amqp.DeferredConfirmation // &dcv: the channel is in confirm mode
	dcv amqp.DeferredConfirmation
	key returnKey

	// Under pc.mu until resolved.
	done       chan struct{} // made by a waiter that has to wait for the watcher; closed once resolved
	err        error
	resolved   bool
	handedOver bool   // the watcher resolves it
	returned   string // the broker's reason when it returned this message; "" otherwise
}

// Done is closed when the broker has answered; Err then returns the outcome without waiting
// for the broker (at most for the channel's watcher, when a return or a nack has to be told
// apart: see pubChannel).
func (c *Confirm) Done() <-chan struct{} { return c.dc.Done() }

// Err waits for Done and returns the outcome: nil when the broker confirmed the message and did
// not return it, a *RefusedError when it refused it, or an outage error wrapping
// ErrConnectionLost (see IsOutage).
func (c *Confirm) Err() error {
	<-c.dc.Done()
	if done := c.pc.settle(c); done != nil {
		<-done
	}
	return c.err
}

// Wait waits for the outcome or for ctx to end.
func (c *Confirm) Wait(ctx context.Context) error {
	select {
	case <-c.dc.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	done := c.pc.settle(c)
	if done == nil {
		return c.err
	}
	select {
	case <-done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Publish writes msg to exchange with the routing key, mandatory, and returns at once; it never
// waits for the confirm. Its error is an outage (ErrNotConnected: the cluster is down or has
// blocked publishing), a *RefusedError for headers AMQP cannot carry, or ctx's error. The write
// itself is not interruptible: TCP back-pressure from the broker can hold it up.
func (p *Publisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (*Confirm, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Header value types are checked by checkEncodable below, which refuses what Table.Validate
	// refuses (TestCheckEncodableAcceptsWhatValidateAccepts): a Validate here walked the table
	// once more per publish.
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrPublisherClosed
	}
	for attempt := 0; ; attempt++ {
		pc, err := p.channel()
		if err != nil {
			return nil, err
		}
		if err := checkEncodable(exchange, key, msg, pc.conn.Config.FrameSize); err != nil {
			return nil, &RefusedError{Reason: "message cannot be published: " + err.Error()}
		}
		conf, err := pc.publish(exchange, key, msg)
		if err == nil {
			return conf, nil
		}
		// A channel exception caused by an earlier publish closes the channel; the next
		// message deserves a fresh one.
		if attempt == 0 && pc.ch.IsClosed() && !pc.conn.IsClosed() {
			continue
		}
		return nil, fmt.Errorf("cluster %s: %w: %w", p.c.name, ErrNotConnected, err)
	}
}

// Hold makes the publishes that follow, on this cluster's publishing connection, go out together in as
// few writes as they fit when release is called (or sooner, once batchLimit bytes wait). Hold
// around a burst of Publish calls, never around anything that waits: held bytes include other
// channels' writes and heartbeats.
func (p *Publisher) Hold() (release func()) {
	b := p.c.currentBatch()
	if b == nil {
		return func() {}
	}
	b.hold()
	return b.release
}

// channel returns the live channel, taking one from the pool if needed. Called with p.mu held.
func (p *Publisher) channel() (*pubChannel, error) {
	conn, _ := p.c.current(p.c.publish)
	if conn == nil {
		return nil, fmt.Errorf("cluster %s: %w", p.c.name, ErrNotConnected)
	}
	if reason, blocked := p.c.blockedReason(); blocked {
		return nil, fmt.Errorf("cluster %s: %w: the broker blocked publishing (%s)", p.c.name, ErrNotConnected, reason)
	}
	if pc := p.cur; pc != nil && pc.conn == conn && !pc.ch.IsClosed() {
		return pc, nil
	}
	if p.cur != nil {
		// Closed, or on a connection that is gone: nothing to close.
		p.c.pool.release(p.cur)
		p.cur = nil
	}
	if b := p.c.currentBatch(); b != nil {
		// Publish may run under Hold: the channel's opening must not wait in the buffer.
		b.bypass()
		defer b.endBypass()
	}
	pc, err := p.c.pool.acquire(p.c, conn)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w: opening a channel: %w", p.c.name, ErrNotConnected, err)
	}
	p.cur = pc
	return pc, nil
}

// Close gives up the channel, and closes it unless other publishers share it: then publishes the
// broker has not confirmed yet resolve as outages.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	pc := p.cur
	p.cur = nil
	p.mu.Unlock()
	if pc == nil || !p.c.pool.release(pc) {
		return nil
	}
	err := pc.ch.Close()
	<-pc.done
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}
