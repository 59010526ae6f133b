// Package consumeloop consumes a queue for as long as a check needs it, across connection
// losses and broker restarts. A message is acknowledged only after the caller has kept it, so
// none is lost; one may be kept twice, since the broker redelivers what was not acknowledged.
package consumeloop

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Options say what to consume and how.
type Options struct {
	// Dial opens a new connection; it is called again after each loss.
	Dial  func() (*amqp.Connection, error)
	Queue string
	// Prefetch bounds the unacknowledged messages in flight.
	Prefetch int
	// RetryAfter is the pause before reconnecting, after a loss or while the queue is missing.
	RetryAfter time.Duration
}

// Run consumes o.Queue until ctx ends, passing every delivery to keep and acknowledging it
// after keep returns. What is not kept when ctx ends stays in the queue.
func Run(ctx context.Context, o Options, keep func(*amqp.Delivery)) {
	for ctx.Err() == nil {
		if err := consume(ctx, o, keep); err != nil && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(o.RetryAfter):
			}
		}
	}
}

// consume runs one connection's consumer until ctx ends (nil) or the connection or consumer
// ends (an error).
func consume(ctx context.Context, o Options, keep func(*amqp.Delivery)) error {
	conn, err := o.Dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Qos(o.Prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(o.Queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil // closing the connection returns what is unacknowledged
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("consumer of %s ended", o.Queue)
			}
			keep(&d)
			_ = d.Ack(false)
		}
	}
}
