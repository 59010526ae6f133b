// Package loop is the baseline the router is measured against: the consume-and-republish loop
// a user would write with amqp091-go alone. It consumes a queue with a prefetch, republishes
// every message to an exchange on a confirm-mode channel with the publishes pipelined, and
// acknowledges each source message only once the broker has confirmed its republication, in
// batches (multiple=true). A nacked publish sends its source message back to the queue.
package loop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultPrefetch matches the router configuration the benchmark compares against.
const DefaultPrefetch = 1000

// ErrConsumerClosed reports that the broker or the connection ended the consumer before the
// context did.
var ErrConsumerClosed = errors.New("loop: consumer closed by the broker")

// Options configure Run.
type Options struct {
	URL      string
	Queue    string // consumed; must exist
	Exchange string // republished to, with each message's routing key
	Prefetch int    // default DefaultPrefetch
	Logger   *slog.Logger
	// Ready, when set, is called once the consumer is registered.
	Ready func()
}

// Stats count what a Run did.
type Stats struct {
	Republished uint64 // publishes the broker confirmed
	Nacked      uint64 // publishes the broker refused; their sources were requeued
	Returned    uint64 // publishes returned as unroutable (mandatory flag)
}

// Run consumes until ctx ends, then stops consuming, waits for the confirms of what it has
// published, acknowledges those sources and returns nil. It returns an error when the
// connection or channel fails.
func Run(ctx context.Context, o Options) (Stats, error) {
	var stats Stats
	if o.Prefetch <= 0 {
		o.Prefetch = DefaultPrefetch
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("wasmrouter-bench-baseline")
	conn, err := amqp.DialConfig(o.URL, amqp.Config{Properties: props})
	if err != nil {
		return stats, fmt.Errorf("loop: dial: %w", err)
	}
	defer conn.Close()

	in, err := conn.Channel()
	if err != nil {
		return stats, fmt.Errorf("loop: consume channel: %w", err)
	}
	if err := in.Qos(o.Prefetch, 0, false); err != nil {
		return stats, fmt.Errorf("loop: qos: %w", err)
	}
	out, err := conn.Channel()
	if err != nil {
		return stats, fmt.Errorf("loop: publish channel: %w", err)
	}
	if err := out.Confirm(false); err != nil {
		return stats, fmt.Errorf("loop: confirm mode: %w", err)
	}
	var returned atomic.Uint64
	returns := out.NotifyReturn(make(chan amqp.Return, 16))
	go func() {
		for r := range returns {
			if returned.Add(1) == 1 {
				log.Warn("publish returned as unroutable", "exchange", r.Exchange, "routing_key", r.RoutingKey)
			}
		}
	}()

	consumeCtx, stopConsuming := context.WithCancel(ctx)
	defer stopConsuming()
	deliveries, err := in.ConsumeWithContext(consumeCtx, o.Queue, "", false, false, false, false, nil)
	if err != nil {
		return stats, fmt.Errorf("loop: consume %q: %w", o.Queue, err)
	}
	if o.Ready != nil {
		o.Ready()
	}

	// At most Prefetch deliveries are unacknowledged, so this buffer never blocks the consumer.
	pending := make(chan inflight, o.Prefetch+1)
	acked := make(chan ackResult, 1)
	go func() { acked <- ackConfirmed(in, pending) }()

	var publishErr error
	for d := range deliveries {
		// The publish must not be abandoned half-way when ctx ends: its source is already ours.
		dc, err := out.PublishWithDeferredConfirmWithContext(context.Background(), o.Exchange, d.RoutingKey, true, false, republish(d))
		if err != nil {
			publishErr = fmt.Errorf("loop: publish: %w", err)
			stopConsuming()
			break
		}
		pending <- inflight{confirm: dc, tag: d.DeliveryTag}
	}
	close(pending)
	res := <-acked
	stats.Republished, stats.Nacked, stats.Returned = res.confirmed, res.nacked, returned.Load()
	switch {
	case publishErr != nil:
		return stats, publishErr
	case res.err != nil:
		return stats, res.err
	case ctx.Err() == nil:
		return stats, ErrConsumerClosed
	}
	return stats, nil
}

type inflight struct {
	confirm *amqp.DeferredConfirmation
	tag     uint64
}

type ackResult struct {
	confirmed, nacked uint64
	err               error
}

// ackConfirmed waits for each publish's confirm, in publish order, and acknowledges the
// confirmed sources with one multiple=true ack per run of confirms that are already in: it
// acks before it would otherwise wait, so the prefetch window never fills with settled work.
func ackConfirmed(ch *amqp.Channel, pending <-chan inflight) ackResult {
	var res ackResult
	var last uint64 // highest confirmed source tag not yet acknowledged
	flush := func() {
		if last != 0 && res.err == nil {
			if err := ch.Ack(last, true); err != nil {
				res.err = fmt.Errorf("loop: ack: %w", err)
			}
		}
		last = 0
	}
	for p := range pending {
		select {
		case <-p.confirm.Done():
		default:
			flush()
			<-p.confirm.Done()
		}
		if !p.confirm.Acked() {
			res.nacked++
			flush()
			if err := ch.Nack(p.tag, false, true); err != nil && res.err == nil {
				res.err = fmt.Errorf("loop: nack: %w", err)
			}
			continue
		}
		res.confirmed++
		last = p.tag
		if len(pending) == 0 {
			flush()
		}
	}
	flush()
	return res
}

// republish copies what a consumer receives into what it publishes: body, headers and
// properties, except user_id (RabbitMQ accepts it only from the login that matches).
func republish(d amqp.Delivery) amqp.Publishing {
	return amqp.Publishing{
		Headers:         d.Headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}
