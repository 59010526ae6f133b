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
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("bench: confirm mode: %w", err)
	}
	window := make([]*amqp.DeferredConfirmation, 0, prefillWindow)
	wait := func(dc *amqp.DeferredConfirmation) error {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("bench: prefill: %w", err)
		}
		if !ok {
			return fmt.Errorf("bench: prefill: publish %d nacked", dc.DeliveryTag)
		}
		return nil
	}
	for i := range n {
		key, msg := Message(run, i, size)
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
		if err != nil {
			return fmt.Errorf("bench: prefill publish %d: %w", i, err)
		}
		if len(window) == prefillWindow {
			if err := wait(window[0]); err != nil {
				return err
			}
			window = window[1:]
		}
		window = append(window, dc)
	}
	for _, dc := range window {
		if err := wait(dc); err != nil {
			return err
		}
	}
	return nil
}
