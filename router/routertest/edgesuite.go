package routertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/router"
)

// suiteTimeout bounds every wait of the source and publisher suites.
const suiteTimeout = 20 * time.Second

// SourceHarness is one source under test and a way to publish to it.
type SourceHarness struct {
	Source router.Source
	// Publish sends a message with this routing key and body to what the source consumes.
	Publish func(t *testing.T, routingKey string, body []byte)
	// PublishUndecodable sends a message with this routing key whose headers the source cannot
	// decode.
	PublishUndecodable func(t *testing.T, routingKey string)
}

// RunSourceSuite checks that a source implementation keeps the promises the engine relies on.
// setup returns a fresh source (its own queue) for one subtest.
func RunSourceSuite(t *testing.T, setup func(t *testing.T) SourceHarness) {
	t.Run("delivers in order and an acknowledgement covers every earlier delivery", func(t *testing.T) {
		h := setup(t)
		for i := range 5 {
			h.Publish(t, "k", fmt.Appendf(nil, "m%d", i))
		}
		c := consume(t, h.Source)
		ds := c.take(t, 5)
		for i, d := range ds {
			if want := fmt.Sprintf("m%d", i); string(d.Event.Body) != want || d.Event.RoutingKey != "k" || d.Redelivered {
				t.Fatalf("delivery %d: body %q key %q redelivered %v, want %q", i, d.Event.Body, d.Event.RoutingKey, d.Redelivered, want)
			}
		}
		if err := ds[4].Ack.AckThrough(); err != nil {
			t.Fatal(err)
		}
		c.stop(t)
		// Nothing acknowledged comes back: the next delivery is the next message.
		h.Publish(t, "k", []byte("after"))
		c = consume(t, h.Source)
		if d := c.take(t, 1)[0]; string(d.Event.Body) != "after" || d.Redelivered {
			t.Fatalf("after acknowledging all: got %q (redelivered %v), want the new message", d.Event.Body, d.Redelivered)
		}
	})

	t.Run("a rejection with requeue delivers the message again, marked redelivered", func(t *testing.T) {
		h := setup(t)
		h.Publish(t, "k", []byte("again"))
		c := consume(t, h.Source)
		first := c.take(t, 1)[0]
		if err := first.Ack.Reject(true); err != nil {
			t.Fatal(err)
		}
		second := c.take(t, 1)[0]
		if string(second.Event.Body) != "again" || !second.Redelivered {
			t.Fatalf("after the requeue: %q redelivered %v", second.Event.Body, second.Redelivered)
		}
		if err := second.Ack.Reject(false); err != nil {
			t.Fatal(err)
		}
		h.Publish(t, "k", []byte("next"))
		if d := c.take(t, 1)[0]; string(d.Event.Body) != "next" {
			t.Fatalf("a message rejected without requeue came back: %q", d.Event.Body)
		}
	})

	t.Run("a message it cannot decode is delivered in its turn, marked, and a rejection removes it", func(t *testing.T) {
		h := setup(t)
		c := consume(t, h.Source)
		h.Publish(t, "k.a", []byte("a"))
		h.PublishUndecodable(t, "k.b")
		h.Publish(t, "k.c", []byte("c"))
		got := c.take(t, 3)
		if got[0].Undecodable != "" || got[2].Undecodable != "" || string(got[0].Event.Body) != "a" || string(got[2].Event.Body) != "c" {
			t.Fatalf("the decodable messages around it: %+v, %+v", got[0], got[2])
		}
		if got[1].Undecodable == "" || got[1].Event.RoutingKey != "k.b" || len(got[1].Event.Headers) != 0 {
			t.Fatalf("the undecodable message: undecodable %q, routing key %q, headers %v; want it marked, in order, without headers",
				got[1].Undecodable, got[1].Event.RoutingKey, got[1].Event.Headers)
		}
		if err := got[1].Ack.Reject(false); err != nil {
			t.Fatal(err)
		}
		if err := got[2].Ack.AckThrough(); err != nil {
			t.Fatal(err)
		}
		// Nothing comes back: the next delivery is the next message.
		h.Publish(t, "k.d", []byte("d"))
		if d := c.take(t, 1)[0]; string(d.Event.Body) != "d" || d.Redelivered {
			t.Fatalf("after the rejection: %q (redelivered %v), want the next message", d.Event.Body, d.Redelivered)
		}
	})
	t.Run("reports consuming and returns nil when its context ends", func(t *testing.T) {
		h := setup(t)
		c := consume(t, h.Source)
		c.waitConsuming(t, true)
		c.stop(t)
		c.waitConsuming(t, false)
	})
}

// consumer runs a source's Consume for a test.
type consumer struct {
	deliveries chan *event.Delivery
	cancel     context.CancelFunc
	done       chan error
	mu         sync.Mutex
	up         bool
	changed    chan struct{}
}

func consume(t *testing.T, src router.Source) *consumer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{deliveries: make(chan *event.Delivery, 1024), cancel: cancel, done: make(chan error, 1), changed: make(chan struct{}, 16)}
	go func() {
		c.done <- src.Consume(ctx, func(d *event.Delivery) { c.deliveries <- d }, func(up bool) {
			c.mu.Lock()
			c.up = up
			c.mu.Unlock()
			select {
			case c.changed <- struct{}{}:
			default:
			}
		}, func(error) {})
	}()
	t.Cleanup(func() { c.cancel(); <-c.done })
	return c
}

func (c *consumer) take(t *testing.T, n int) []*event.Delivery {
	t.Helper()
	out := make([]*event.Delivery, 0, n)
	timeout := time.After(suiteTimeout)
	for len(out) < n {
		select {
		case d := <-c.deliveries:
			out = append(out, d)
		case <-timeout:
			t.Fatalf("%d of %d deliveries arrived", len(out), n)
		}
	}
	return out
}

func (c *consumer) waitConsuming(t *testing.T, up bool) {
	t.Helper()
	timeout := time.After(suiteTimeout)
	for {
		c.mu.Lock()
		now := c.up
		c.mu.Unlock()
		if now == up {
			return
		}
		select {
		case <-c.changed:
		case <-timeout:
			t.Fatalf("consuming never became %v", up)
		}
	}
}

func (c *consumer) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("Consume ended with %v, want nil", err)
		}
		c.done <- nil // for the cleanup
	case <-time.After(suiteTimeout):
		t.Fatal("Consume did not return after its context ended")
	}
}

// PublisherHarness is one publisher under test and what it publishes to.
type PublisherHarness struct {
	Publisher router.Publisher
	// Exchange exists, and Received reads what reached it, waiting for n messages.
	Exchange string
	Received func(t *testing.T, n int) []event.Message
	// Missing is an exchange the target refuses messages for (one that does not exist).
	Missing string
	// Cut, when set, makes the target unreachable (up false) or reachable again (up true).
	Cut func(t *testing.T, up bool)
}

// RunPublisherSuite checks that a publisher implementation keeps the promises the engine
// relies on. setup returns a fresh publisher and target for one subtest.
func RunPublisherSuite(t *testing.T, setup func(t *testing.T) PublisherHarness) {
	t.Run("confirms in order and delivers the messages with their typed headers", func(t *testing.T) {
		h := setup(t)
		ctx := context.Background()
		waitReady(t, h.Publisher)
		release := h.Publisher.Hold()
		var confs []event.Confirmation
		for i := range 5 {
			c, err := h.Publisher.Publish(ctx, testMessage(h.Exchange, i))
			if err != nil {
				release()
				t.Fatal(err)
			}
			confs = append(confs, c)
		}
		release()
		for i, c := range confs {
			if err := waitConfirm(t, c); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		got := h.Received(t, 5)
		for i, m := range got {
			want := testMessage(h.Exchange, i)
			if !bytes.Equal(m.Body, want.Body) || m.RoutingKey != want.RoutingKey || m.Props.MessageID != want.Props.MessageID {
				t.Fatalf("message %d: %q key %q id %q", i, m.Body, m.RoutingKey, m.Props.MessageID)
			}
			if !reflect.DeepEqual(m.Headers, want.Headers) {
				t.Fatalf("message %d headers:\n got %#v\nwant %#v", i, m.Headers, want.Headers)
			}
		}
		if h.Publisher.Cluster() == "" {
			t.Error("Cluster names nothing")
		}
	})

	t.Run("a refusal matches event.ErrRefused and is not an outage", func(t *testing.T) {
		h := setup(t)
		waitReady(t, h.Publisher)
		c, err := h.Publisher.Publish(context.Background(), testMessage(h.Missing, 0))
		if err == nil {
			err = waitConfirm(t, c)
		}
		if !errors.Is(err, event.ErrRefused) || event.IsOutage(err) {
			t.Fatalf("publish to a missing exchange: %v, want a refusal", err)
		}
		// The publisher goes on.
		c, err = h.Publisher.Publish(context.Background(), testMessage(h.Exchange, 1))
		if err != nil {
			t.Fatal(err)
		}
		if err := waitConfirm(t, c); err != nil {
			t.Fatalf("after a refusal: %v", err)
		}
	})

	t.Run("an outage is not a refusal, and WaitReady returns once the target is back", func(t *testing.T) {
		h := setup(t)
		ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
		defer cancel()
		if err := h.Publisher.WaitReady(ctx); err != nil {
			t.Fatalf("WaitReady on a reachable target: %v", err)
		}
		if h.Cut == nil {
			t.Skip("the harness cannot cut the target")
		}
		h.Cut(t, false)
		c, err := h.Publisher.Publish(ctx, testMessage(h.Exchange, 0))
		if err == nil {
			err = waitConfirm(t, c)
		}
		if err == nil || !event.IsOutage(err) || errors.Is(err, event.ErrRefused) {
			t.Fatalf("publish while cut: %v, want an outage", err)
		}
		h.Cut(t, true)
		if err := h.Publisher.WaitReady(ctx); err != nil {
			t.Fatalf("WaitReady after the target is back: %v", err)
		}
		for {
			c, err := h.Publisher.Publish(ctx, testMessage(h.Exchange, 1))
			if err == nil {
				err = waitConfirm(t, c)
			}
			if err == nil {
				break
			}
			if !event.IsOutage(err) || ctx.Err() != nil {
				t.Fatalf("publish after the target is back: %v", err)
			}
		}
	})
}

// waitReady waits, as the engine does, until a publish has a chance to go through.
func waitReady(t *testing.T, p router.Publisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	defer cancel()
	if err := p.WaitReady(ctx); err != nil {
		t.Fatalf("the target never became ready: %v", err)
	}
}

func waitConfirm(t *testing.T, c event.Confirmation) error {
	t.Helper()
	select {
	case <-c.Done():
		return c.Err()
	case <-time.After(suiteTimeout):
		t.Fatal("no confirmation")
		return nil
	}
}

func testMessage(exchange string, i int) *event.Message {
	return &event.Message{
		Exchange: exchange, RoutingKey: fmt.Sprintf("k.%d", i),
		Props: event.Properties{MessageID: fmt.Sprintf("id-%d", i), ContentType: "text/plain", DeliveryMode: 2},
		Headers: event.Table{
			"i64": int64(1) << 40, "i32": int32(-7), "b": true, "s": "text", "f": 2.5,
			"nested": event.Table{"n": int64(3)}, event.HeaderRoute: "r",
		},
		Body: fmt.Appendf(nil, "body %d", i),
	}
}
