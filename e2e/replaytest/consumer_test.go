package replaytest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// consumer receives what a queue bound to a target gets.
type consumer struct {
	t               *testing.T
	exchange, queue string
	msgs            <-chan amqp.Delivery
}

// bind declares a queue bound to exchange and consumes it until the test ends.
func (w *world) bind(exchange string) *consumer {
	w.t.Helper()
	ch := rabbit.Channel(w.t, w.conn)
	w.t.Cleanup(func() { ch.Close() })
	q := rabbit.DeclareQueueBound(w.t, ch, exchange, "#")
	msgs, err := ch.Consume(q, "", true, true, false, false, nil)
	if err != nil {
		w.t.Fatalf("consume %s: %v", q, err)
	}
	return &consumer{t: w.t, exchange: exchange, queue: q, msgs: msgs}
}

// take returns the next n messages, failing the test if they do not all come within timeout.
func (c *consumer) take(n int, timeout time.Duration) []amqp.Delivery {
	c.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var got []amqp.Delivery
	for len(got) < n {
		select {
		case d, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("consumer of %s closed after %d of %d messages", c.queue, len(got), n)
			}
			got = append(got, d)
		case <-timer.C:
			c.t.Fatalf("%s: got %d of %d messages within %s: %v", c.queue, len(got), n, timeout, describe(got))
		}
	}
	return got
}

// expectNone checks that nothing arrived beyond what the test took: it publishes a marker to
// the exchange and wants it to be the next message. Every delivery of a finished job was
// confirmed before the job ended, so it sits in the queue ahead of the marker.
func (c *consumer) expectNone(w *world) {
	c.t.Helper()
	marker := markerIn(c.t, w, c)
	var extra []amqp.Delivery
	for {
		d := c.take(1, 10*time.Second)[0]
		if d.MessageId == marker {
			break
		}
		extra = append(extra, d)
	}
	if len(extra) > 0 {
		c.t.Errorf("%s got more than expected: %s", c.queue, describe(extra))
	}
}

// markerIn publishes a marker message to the consumer's exchange and returns its id.
func markerIn(t *testing.T, w *world, c *consumer) string {
	t.Helper()
	ch := rabbit.Channel(t, w.conn)
	defer ch.Close()
	marker := rabbit.Unique("marker")
	rabbit.PublishConfirmed(t, ch, c.exchange, "marker", amqp.Publishing{MessageId: marker})
	return marker
}

func describe(ds []amqp.Delivery) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%s(seq %v, replay %v)", d.MessageId, d.Headers[event.HeaderSeq], d.Headers[event.HeaderReplay])
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func isReplay(d amqp.Delivery) bool { return d.Headers[event.HeaderReplay] == true }

func seqOf(d amqp.Delivery) int64 {
	s, _ := d.Headers[event.HeaderSeq].(int64)
	return s
}

func messageIDs(ds []amqp.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.MessageId
	}
	return out
}
