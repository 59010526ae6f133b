package amqpx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// newSource returns a source spec with unique names, deleted when the test ends.
func newSource(t *testing.T) config.SourceSpec {
	t.Helper()
	s := config.SourceSpec{Name: "in", Exchange: rabbit.Unique("test.src"), Queue: rabbit.Unique("test.src.q"), Prefetch: 50}
	rabbit.DeleteExchangeAtCleanup(t, s.Exchange)
	rabbit.DeleteQueueAtCleanup(t, s.Queue)
	return s
}

// collector gathers deliveries from handle.
type collector struct {
	mu     sync.Mutex
	got    []*Delivery
	ready  atomic.Bool
	states []bool
}

func (c *collector) handle(d *Delivery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, d)
}

func (c *collector) setReady(r bool) {
	c.ready.Store(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = append(c.states, r)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func (c *collector) at(i int) *Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[i]
}

func publishN(t *testing.T, ch *amqp.Channel, exchange, key string, from, n int) {
	t.Helper()
	msgs := make([]amqp.Publishing, n)
	for i := range msgs {
		msgs[i] = amqp.Publishing{MessageId: strconv.Itoa(from + i), Body: []byte(strconv.Itoa(from + i))}
	}
	rabbit.PublishConfirmed(t, ch, exchange, key, msgs...)
}

func TestDeclareSource(t *testing.T) {
	conn := rabbit.Dial(t)
	t.Run("classic with bindings", func(t *testing.T) {
		s := newSource(t)
		s.Bindings = []string{"a.*", "b.#"}
		ch := rabbit.Channel(t, conn)
		if err := DeclareSource(ch, s); err != nil {
			t.Fatal(err)
		}
		if err := DeclareSource(ch, s); err != nil {
			t.Fatalf("declaring again: %v", err)
		}
		publishN(t, ch, s.Exchange, "a.x", 0, 1)
		publishN(t, ch, s.Exchange, "b.x.y", 1, 1)
		publishN(t, ch, s.Exchange, "c", 2, 1)
		waitFor(t, "bound messages", 30*time.Second, func() bool { return rabbit.QueueLen(t, conn, s.Queue) == 2 })
	})
	t.Run("quorum with delivery limit and dead-lettering", func(t *testing.T) {
		s := newSource(t)
		s.QueueType, s.DeliveryLimit, s.DeadLetterExchange = "quorum", 3, "dlx"
		if err := DeclareSource(rabbit.Channel(t, conn), s); err != nil {
			t.Fatal(err)
		}
		// The same arguments declared by hand are equivalent; a classic queue is not.
		ch := rabbit.Channel(t, conn)
		args := amqp.Table{"x-queue-type": "quorum", "x-delivery-limit": int64(3), "x-dead-letter-exchange": "dlx"}
		if _, err := ch.QueueDeclare(s.Queue, true, false, false, false, args); err != nil {
			t.Fatalf("the queue lacks its arguments: %v", err)
		}
		s.QueueType, s.DeliveryLimit = "classic", 0
		err := DeclareSource(rabbit.Channel(t, conn), s)
		if err == nil || !strings.Contains(err.Error(), "PRECONDITION_FAILED") || !strings.Contains(err.Error(), "x-queue-type") {
			t.Fatalf("classic over quorum: %v", err)
		}
	})
	t.Run("exchange of another type", func(t *testing.T) {
		s := newSource(t)
		ch := rabbit.Channel(t, conn)
		if err := ch.ExchangeDeclare(s.Exchange, "direct", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		err := DeclareSource(rabbit.Channel(t, conn), s)
		if err == nil || !strings.Contains(err.Error(), "inequivalent arg 'type'") || !strings.Contains(err.Error(), s.Exchange) {
			t.Fatalf("topic over direct: %v", err)
		}
	})
	t.Run("invalid specs", func(t *testing.T) {
		for _, s := range []config.SourceSpec{
			{Name: "a", Queue: "q", QueueType: "stream"},
			{Name: "b", Queue: "q", DeliveryLimit: 2},
			{Name: "c", Queue: "q", Prefetch: 70000},
			{Name: "d"},
		} {
			if err := Consume(context.Background(), nil, s, nil, nil); err == nil || !strings.Contains(err.Error(), "source "+s.Name) {
				t.Fatalf("Consume(%+v) = %v", s, err)
			}
		}
	})
}

func TestConsumeInOrderAndAck(t *testing.T) {
	conn := rabbit.Dial(t)
	s := newSource(t)
	ch := rabbit.Channel(t, conn)
	if err := DeclareSource(ch, s); err != nil {
		t.Fatal(err)
	}
	const n = 300
	s.Prefetch = 500
	publishN(t, ch, s.Exchange, "k", 0, n)

	c, err := NewCluster(config.ClusterSpec{Name: rabbit.Unique("c"), URL: rabbit.URL()}, fastOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stopCluster := context.WithCancel(context.Background())
	clusterDone := make(chan struct{})
	go func() { defer close(clusterDone); c.Run(ctx) }()
	defer func() { stopCluster(); <-clusterDone }()

	var col collector
	consumeCtx, stopConsume := context.WithCancel(context.Background())
	consumeDone := make(chan error, 1)
	go func() { consumeDone <- Consume(consumeCtx, c, s, col.handle, col.setReady) }()
	waitFor(t, "all deliveries", 30*time.Second, func() bool { return col.len() == n })
	if !col.ready.Load() {
		t.Fatal("not ready while consuming")
	}
	for i := range n {
		d := col.at(i)
		if string(d.Event.Body) != strconv.Itoa(i) || d.Event.Source != s.Name || d.Event.Exchange != s.Exchange || d.Redelivered {
			t.Fatalf("delivery %d: %+v", i, d.Event)
		}
	}
	// Acknowledging through the 200th leaves the last 100 unacknowledged.
	if err := col.at(199).AckThrough(); err != nil {
		t.Fatal(err)
	}
	stopConsume()
	if err := <-consumeDone; err != nil {
		t.Fatal(err)
	}
	if col.ready.Load() {
		t.Fatal("still ready after Consume returned")
	}
	// The channel stays open after Consume returns: late acknowledgements still count.
	if err := col.at(249).AckThrough(); err != nil {
		t.Fatal(err)
	}
	stopCluster()
	<-clusterDone
	waitFor(t, "unacknowledged messages back in the queue", 30*time.Second, func() bool { return rabbit.QueueLen(t, conn, s.Queue) == n-250 })
	if err := col.at(299).AckThrough(); err != nil {
		t.Fatalf("ack on a closed channel: %v", err)
	}
}

func TestConsumeRejectAndRedeliver(t *testing.T) {
	conn := rabbit.Dial(t)
	ch := rabbit.Channel(t, conn)
	s := newSource(t)
	s.DeadLetterExchange = rabbit.Unique("test.dlx")
	if err := ch.ExchangeDeclare(s.DeadLetterExchange, "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	rabbit.DeleteExchangeAtCleanup(t, s.DeadLetterExchange)
	dead := rabbit.DeclareQueueBound(t, ch, s.DeadLetterExchange, "")
	if err := DeclareSource(ch, s); err != nil {
		t.Fatal(err)
	}
	publishN(t, ch, s.Exchange, "k", 0, 2)

	c := startCluster(t, rabbit.URL(), fastOptions(nil))
	var col collector
	startConsume(t, c, s, col.handle, col.setReady)
	waitFor(t, "two deliveries", 30*time.Second, func() bool { return col.len() == 2 })
	if err := col.at(0).Reject(false); err != nil {
		t.Fatal(err)
	}
	if err := col.at(1).Reject(true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the requeued message", 30*time.Second, func() bool { return col.len() == 3 })
	if d := col.at(2); string(d.Event.Body) != "1" || !d.Redelivered {
		t.Fatalf("redelivery: body %q, redelivered %v", d.Event.Body, d.Redelivered)
	}
	waitFor(t, "the rejected message dead-lettered", 30*time.Second, func() bool { return rabbit.QueueLen(t, conn, dead) == 1 })
}

func TestConsumeResumesAfterOutage(t *testing.T) {
	conn := rabbit.Dial(t)
	ch := rabbit.Channel(t, conn)
	s := newSource(t)
	c, p := startClusterViaProxy(t)
	var col collector
	startConsume(t, c, s, col.handle, col.setReady)
	waitFor(t, "ready", 30*time.Second, col.ready.Load)
	publishN(t, ch, s.Exchange, "k", 0, 5)
	waitFor(t, "five deliveries", 30*time.Second, func() bool { return col.len() == 5 })
	if err := col.at(2).AckThrough(); err != nil {
		t.Fatal(err)
	}
	// A synchronous call on the same channel returns after the broker has processed the ack.
	if _, err := col.at(2).ch.QueueDeclarePassive(s.Queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}

	p.Cut()
	waitFor(t, "not ready", 30*time.Second, func() bool { return !col.ready.Load() })
	// The broker learns of the cut on its own side; until it drops the consumer, what is
	// published next could still go out on the lost channel (and come back redelivered).
	waitFor(t, "the broker to drop the consumer", 30*time.Second, func() bool { return rabbit.QueueConsumers(t, conn, s.Queue) == 0 })
	publishN(t, ch, s.Exchange, "k", 5, 5)
	// An ack on the lost channel is a no-op.
	if err := col.at(4).AckThrough(); err != nil {
		t.Fatalf("ack after the connection dropped: %v", err)
	}
	p.Restore()
	waitFor(t, "ready again", 30*time.Second, col.ready.Load)
	waitFor(t, "the unacknowledged and the new messages", 30*time.Second, func() bool { return col.len() >= 12 })
	if col.len() != 12 {
		t.Fatalf("%d deliveries, want 12", col.len())
	}
	col.mu.Lock()
	states := fmt.Sprint(col.states)
	col.mu.Unlock()
	if states != "[true false true]" {
		t.Fatalf("ready reported %s", states)
	}
	for i, want := range []string{"3", "4", "5", "6", "7", "8", "9"} {
		d := col.at(5 + i)
		if string(d.Event.Body) != want || d.Redelivered != (i < 2) {
			t.Fatalf("delivery %d after the outage: body %s, redelivered %v", 5+i, d.Event.Body, d.Redelivered)
		}
	}
}

func TestConsumePauser(t *testing.T) {
	conn := rabbit.Dial(t)
	ch := rabbit.Channel(t, conn)
	s := newSource(t)
	c := startCluster(t, rabbit.URL(), fastOptions(nil))
	var pauser Pauser
	var col collector
	startConsume(t, c, s, col.handle, col.setReady, WithPauser(&pauser))
	waitFor(t, "ready", 30*time.Second, col.ready.Load)
	publishN(t, ch, s.Exchange, "k", 0, 3)
	waitFor(t, "three deliveries", 30*time.Second, func() bool { return col.len() == 3 })

	pauser.Pause("log full")
	if paused, reason := pauser.Paused(); !paused || reason != "log full" {
		t.Fatalf("Paused() = %v, %q", paused, reason)
	}
	waitFor(t, "not ready while paused", 30*time.Second, func() bool { return !col.ready.Load() })
	// Unacknowledged messages went back to the queue, and new ones wait there too.
	publishN(t, ch, s.Exchange, "k", 3, 1)
	waitFor(t, "messages back in the queue", 30*time.Second, func() bool { return rabbit.QueueLen(t, conn, s.Queue) == 4 })
	if col.len() != 3 {
		t.Fatalf("%d deliveries while paused", col.len())
	}

	pauser.Resume()
	waitFor(t, "deliveries after resume", 30*time.Second, func() bool { return col.len() == 7 })
	if !col.ready.Load() {
		t.Fatal("not ready after resume")
	}
	if d := col.at(3); !d.Redelivered || string(d.Event.Body) != "0" {
		t.Fatalf("first delivery after resume: %s, redelivered %v", d.Event.Body, d.Redelivered)
	}
}

func TestConsumeRedeclaresDeletedQueue(t *testing.T) {
	conn := rabbit.Dial(t)
	ch := rabbit.Channel(t, conn)
	s := newSource(t)
	var logs logBuffer
	c := startCluster(t, rabbit.URL(), fastOptions(logs.logger()))
	var col collector
	startConsume(t, c, s, col.handle, col.setReady)
	waitFor(t, "ready", 30*time.Second, col.ready.Load)
	if _, err := ch.QueueDelete(s.Queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the queue declared again", 30*time.Second, func() bool {
		return strings.Count(logs.String(), "msg=consuming") >= 2
	})
	publishN(t, ch, s.Exchange, "k", 0, 1)
	waitFor(t, "a delivery from the new queue", 30*time.Second, func() bool { return col.len() == 1 })
	if !strings.Contains(logs.String(), "cancelled the consumer") {
		t.Fatalf("cancellation not logged:\n%s", logs.String())
	}
}

// bigLConn rewrites the field type of the header "x-bigL" from 'l' (int64) to 'L', the way
// py-amqp encodes large integers; RabbitMQ passes it through and amqp091-go cannot decode it.
type bigLConn struct{ net.Conn }

func (c bigLConn) Write(p []byte) (int, error) {
	out := bytes.ReplaceAll(p, []byte("\x06x-bigLl"), []byte("\x06x-bigLL"))
	return c.Conn.Write(out)
}

func publishPoison(t *testing.T, exchange, key string) {
	t.Helper()
	conn, err := amqp.DialConfig(rabbit.URL(), amqp.Config{Dial: func(network, addr string) (net.Conn, error) {
		c, err := net.DialTimeout(network, addr, 5*time.Second)
		return bigLConn{c}, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch := rabbit.Channel(t, conn)
	rabbit.PublishConfirmed(t, ch, exchange, key, amqp.Publishing{Headers: amqp.Table{"x-bigL": int64(1) << 40}, Body: []byte("poison")})
}

func TestConsumeUndecodableMessage(t *testing.T) {
	conn := rabbit.Dial(t)
	t.Run("classic queue", func(t *testing.T) {
		ch := rabbit.Channel(t, conn)
		s := newSource(t)
		if err := DeclareSource(ch, s); err != nil {
			t.Fatal(err)
		}
		publishPoison(t, s.Exchange, "k")
		publishN(t, ch, s.Exchange, "k", 0, 1)
		c := startCluster(t, rabbit.URL(), fastOptions(nil))
		var col collector
		var decodeErrors atomic.Int32
		hook := func(error) { decodeErrors.Add(1) }
		startConsume(t, c, s, func(d *Delivery) {
			col.handle(d)
			if d.Undecodable != "" {
				_ = d.Reject(false)
				return
			}
			_ = d.AckThrough()
		}, col.setReady, WithDecodeErrorHook(hook))
		// The frame filter hands the poison out marked, without its headers, and the message
		// behind it follows on the same connection.
		waitFor(t, "the poison and the message after it", 30*time.Second, func() bool { return col.len() >= 2 })
		first := col.at(0)
		if !strings.Contains(first.Undecodable, "field type 'L'") || string(first.Event.Body) != "poison" || len(first.Event.Headers) != 0 {
			t.Errorf("first delivery: undecodable %q, body %q, headers %v", first.Undecodable, first.Event.Body, first.Event.Headers)
		}
		if second := col.at(1); second.Undecodable != "" || string(second.Event.Body) != "0" {
			t.Errorf("second delivery: undecodable %q, body %q", second.Undecodable, second.Event.Body)
		}
		if n := decodeErrors.Load(); n != 0 {
			t.Errorf("%d decode errors: the connection was dropped", n)
		}
	})
	t.Run("quorum queue with a delivery limit", func(t *testing.T) {
		ch := rabbit.Channel(t, conn)
		s := newSource(t)
		s.QueueType, s.DeliveryLimit = "quorum", 1
		s.DeadLetterExchange = rabbit.Unique("test.dlx")
		rabbit.DeleteExchangeAtCleanup(t, s.DeadLetterExchange)
		if err := DeclareSource(ch, s); err != nil {
			t.Fatal(err)
		}
		publishPoison(t, s.Exchange, "k")
		publishN(t, ch, s.Exchange, "k", 0, 1)
		c := startCluster(t, rabbit.URL(), fastOptions(nil))
		var col collector
		startConsume(t, c, s, func(d *Delivery) {
			col.handle(d)
			_ = d.AckThrough()
		}, col.setReady)
		// Either the broker dead-letters the message after the limit, or (RabbitMQ 3.10
		// re-encodes the headers of quorum queue messages) it arrives readable: the source
		// is not wedged.
		waitFor(t, "the message after the poison", 30*time.Second, func() bool {
			for i := range col.len() {
				if string(col.at(i).Event.Body) == "0" {
					return true
				}
			}
			return false
		})
	})
}

func TestIsDecodeError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&amqp.Error{Code: amqp.FrameError, Reason: amqp.ErrSyntax.Error()}, true},
		{fmt.Errorf("wrapped: %w", &amqp.Error{Code: amqp.FrameError, Reason: amqp.ErrFrame.Error()}), true},
		{&amqp.Error{Code: amqp.FrameError, Reason: "EOF"}, false},
		{&amqp.Error{Code: amqp.ConnectionForced, Reason: "CONNECTION_FORCED", Server: true}, false},
		{errors.New(amqp.ErrSyntax.Reason), false},
		{nil, false},
	} {
		if got := IsDecodeError(tc.err); got != tc.want {
			t.Errorf("IsDecodeError(%v) = %v", tc.err, got)
		}
	}
	if err := (&Delivery{}).AckThrough(); err != nil {
		t.Fatalf("ack without a channel: %v", err)
	}
}
