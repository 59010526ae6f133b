package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// SentHeader carries the publish time (Unix nanoseconds, int64) in latency runs.
const SentHeader = "x-bench-sent"

// routingKeys are cycled through, so that the messages look like a mixed event stream.
var routingKeys = []string{"order.created", "order.paid", "payment.settled", "user.updated"}

// Message is the i-th benchmark message: a persistent JSON document padded to size bytes, with
// a message id, a timestamp and two headers, as a typical publisher sends them. The JSON has
// an "amount" field so that WASM filter variants have something to look at.
func Message(run string, i, size int) (routingKey string, p amqp.Publishing) {
	body := make([]byte, 0, size)
	body = append(body, `{"id":`...)
	body = strconv.AppendInt(body, int64(i), 10)
	body = append(body, `,"amount":`...)
	body = strconv.AppendInt(body, int64(100+i%900), 10)
	body = append(body, `,"pad":"`...)
	for len(body) < size-2 {
		body = append(body, 'x')
	}
	body = append(body, `"}`...)
	return routingKeys[i%len(routingKeys)], amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    run + "-" + strconv.Itoa(i),
		Timestamp:    time.Now(),
		AppId:        "wasmrouter-bench",
		Headers:      amqp.Table{"tenant": "acme", "x-bench-seq": int64(i)},
		Body:         body,
	}
}

// prefillWindow bounds the publishes awaiting a confirm while filling a queue.
const prefillWindow = 2048

// Prefill publishes n messages of size bytes to exchange with pipelined publisher confirms,
// and returns once the broker has confirmed them all.
func (b *Broker) Prefill(ctx context.Context, exchange, run string, n, size int) error {
	ch, err := b.channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return publishConfirmed(ctx, ch, exchange, run, n, size, prefillWindow, false)
}

// publishConfirmed puts ch in confirm mode and publishes n messages (see Message) to exchange,
// with up to window publishes awaiting their confirm; it returns once the broker has confirmed
// them all. asReplayed publishes them as a replay does: mandatory, with the four x-router-*
// headers.
func publishConfirmed(ctx context.Context, ch *amqp.Channel, exchange, run string, n, size, window int, asReplayed bool) error {
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("bench: confirm mode: %w", err)
	}
	pending := make([]*amqp.DeferredConfirmation, 0, window)
	wait := func(dc *amqp.DeferredConfirmation) error {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("bench: publish: %w", err)
		}
		if !ok {
			return fmt.Errorf("bench: publish %d nacked", dc.DeliveryTag)
		}
		return nil
	}
	for i := range n {
		if len(pending) == window {
			if err := wait(pending[0]); err != nil {
				return err
			}
			pending = pending[1:]
		}
		key, msg := Message(run, i, size)
		if asReplayed {
			msg.Headers["x-router-route"] = "all"
			msg.Headers["x-router-source"] = "in"
			msg.Headers["x-router-seq"] = int64(i + 1)
			msg.Headers["x-router-replay"] = true
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, asReplayed, false, msg)
		if err != nil {
			return fmt.Errorf("bench: publish %d: %w", i, err)
		}
		pending = append(pending, dc)
	}
	for _, dc := range pending {
		if err := wait(dc); err != nil {
			return err
		}
	}
	return nil
}
