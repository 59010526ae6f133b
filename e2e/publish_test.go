package e2e

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// clientName is the connection name of the tests' own publishers and consumers, so that a
// test can have the broker close exactly its own connections.
const clientName = "wasmrouter-e2e"

// dial opens a connection of the tests' own, named clientName.
func dial() (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(clientName)
	return amqp.DialConfig(rabbit.URL(), amqp.Config{Dial: amqp.DefaultDial(30 * time.Second), Properties: props})
}

// withChannel runs fn on a channel of a short-lived connection: the tests' declarations must
// not depend on a connection that a test may have had the broker close.
func withChannel(t testing.TB, fn func(ch *amqp.Channel) error) {
	t.Helper()
	conn, err := dial()
	if err != nil {
		t.Fatalf("cannot reach the broker: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = fn(ch)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// targetQueue declares exchange as a durable topic exchange (as the router would), and a queue
// bound to it with "#"; both are deleted when the test ends. It returns the queue's name.
func targetQueue(t testing.TB, exchange string) string {
	t.Helper()
	name := rabbit.Unique("e2e.q")
	withChannel(t, func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %s: %w", exchange, err)
		}
		if _, err := ch.QueueDeclare(name, false, false, false, false, nil); err != nil {
			return fmt.Errorf("declare queue %s: %w", name, err)
		}
		return ch.QueueBind(name, "#", exchange, false, nil)
	})
	rabbit.DeleteExchangeAtCleanup(t, exchange)
	rabbit.DeleteQueueAtCleanup(t, name)
	return name
}

// queueLen is the number of ready messages in queue.
func queueLen(t testing.TB, queue string) int {
	t.Helper()
	n := 0
	withChannel(t, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		n = q.Messages
		return err
	})
	return n
}

// message is one publish: a routing key and the message.
type message struct {
	key string
	msg amqp.Publishing
}

// publishBatch is how many messages go out before the publisher waits for their confirms.
const publishBatch = 100

// publisher publishes to one exchange with confirms, reconnecting when the connection goes
// away.
type publisher struct {
	exchange string
	conn     *amqp.Connection
	ch       *amqp.Channel
}

// send publishes batch, in order, each confirmed by the broker. When the connection goes away
// it reconnects and publishes the whole batch again, so a message may arrive twice but none is
// lost. It gives up after a minute.
func (p *publisher) send(batch []message) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if p.ch == nil || p.ch.IsClosed() {
			p.close()
			var err error
			if p.conn, p.ch, err = confirmChannel(); err != nil {
				time.Sleep(50 * time.Millisecond) // the broker may be closing connections
				continue
			}
		}
		if err := publishConfirmed(p.ch, p.exchange, batch); err == nil {
			return nil
		}
		_ = p.ch.Close()
	}
	return fmt.Errorf("publishing to %s: not confirmed within a minute", p.exchange)
}

func (p *publisher) close() {
	if p.conn != nil {
		_ = p.conn.Close()
	}
	p.conn, p.ch = nil, nil
}

// publishAll publishes msgs to exchange in order, each confirmed (see publisher.send).
func publishAll(exchange string, msgs []message) error {
	return publishPaced(exchange, msgs, 0, nil)
}

// errStopped ends a publishing flow stopped before it published everything.
var errStopped = errors.New("publishing stopped before the end")

// publishPaced is publishAll at about perSecond messages a second (0: as fast as it goes), so
// that a test can act while the flow is under way; it ends early when stop is closed.
func publishPaced(exchange string, msgs []message, perSecond int, stop <-chan struct{}) error {
	p := &publisher{exchange: exchange}
	defer p.close()
	start := time.Now()
	for i := 0; i < len(msgs); i += publishBatch {
		pause := time.Duration(0)
		if perSecond > 0 {
			pause = time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(perSecond)))
		}
		select {
		case <-stop:
			return errStopped
		case <-time.After(pause):
		}
		if err := p.send(msgs[i:min(i+publishBatch, len(msgs))]); err != nil {
			return err
		}
	}
	return nil
}

func confirmChannel() (*amqp.Connection, *amqp.Channel, error) {
	conn, err := dial()
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, ch, nil
}

var errNotConfirmed = errors.New("publish not confirmed")

func publishConfirmed(ch *amqp.Channel, exchange string, msgs []message) error {
	confirms := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	for _, m := range msgs {
		dc, err := ch.PublishWithDeferredConfirm(exchange, m.key, false, false, m.msg)
		if err != nil {
			return err
		}
		confirms = append(confirms, dc)
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for _, dc := range confirms {
		select {
		case <-dc.Done():
			if !dc.Acked() {
				return errNotConfirmed
			}
		case <-timeout.C:
			return errNotConfirmed
		}
	}
	return nil
}

// mustPublish publishes from the test goroutine.
func mustPublish(t testing.TB, exchange string, msgs ...message) {
	t.Helper()
	if err := publishAll(exchange, msgs); err != nil {
		t.Fatal(err)
	}
}

// flow is a publisher running in the background.
type flow struct {
	stop chan struct{}
	once sync.Once
	done chan struct{}
	ids  []string // the ids published, each confirmed (publishUntil)
	err  error
}

func newFlow(t testing.TB) *flow {
	f := &flow{stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() { f.end() })
	return f
}

// end stops the flow and waits for it; it returns the flow's outcome.
func (f *flow) end() ([]string, error) {
	f.once.Do(func() { close(f.stop) })
	<-f.done
	return f.ids, f.err
}

// wait waits for the flow to publish everything, failing the test if it could not.
func (f *flow) wait(t testing.TB) {
	t.Helper()
	<-f.done
	if f.err != nil {
		t.Fatal(f.err)
	}
}

// publishInBackground publishes msgs from a goroutine at about perSecond messages a second.
// The flow is stopped when the test ends.
func publishInBackground(t testing.TB, exchange string, msgs []message, perSecond int) *flow {
	f := newFlow(t)
	go func() {
		defer close(f.done)
		f.err = publishPaced(exchange, msgs, perSecond, f.stop)
	}()
	return f
}

// publishUntilEnd publishes numbered messages (see numbered) at about perSecond a second, from
// a goroutine, until the flow's end; end returns the ids of all it published, each confirmed.
func publishUntilEnd(t testing.TB, exchange, prefix, key string, perSecond int) *flow {
	f := newFlow(t)
	go func() {
		defer close(f.done)
		p := &publisher{exchange: exchange}
		defer p.close()
		tick := time.NewTicker(time.Second * publishBatch / time.Duration(perSecond))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-f.stop:
				return
			case <-tick.C:
			}
			batch, ids := numbered(fmt.Sprintf("%s-%04d", prefix, n), key, publishBatch)
			if f.err = p.send(batch); f.err != nil {
				return
			}
			f.ids = append(f.ids, ids...)
		}
	}()
	return f
}

// numbered makes n persistent messages with message ids prefix-00000 on, and the header
// e2e-seq (int32) holding their index, all with routing key key.
func numbered(prefix, key string, n int) ([]message, []string) {
	msgs := make([]message, n)
	ids := make([]string, n)
	for i := range msgs {
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i)
		msgs[i] = message{key: key, msg: amqp.Publishing{
			MessageId:    ids[i],
			DeliveryMode: amqp.Persistent,
			Headers:      amqp.Table{"e2e-seq": int32(i)},
			Body:         fmt.Appendf(nil, `{"n":%d}`, i),
		}}
	}
	return msgs, ids
}
