package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrTimeout reports that a queue did not reach the wanted length in time.
var ErrTimeout = errors.New("bench: timed out")

// Topology names the exchanges and queues of one run. Every run gets fresh names, so that
// nothing a run leaves behind can disturb the next.
type Topology struct {
	SourceExchange string
	SourceQueue    string
	TargetExchange string
	TargetQueue    string
}

// NewTopology returns unique names starting with prefix.
func NewTopology(prefix string) Topology {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	p := prefix + "." + hex.EncodeToString(b)
	return Topology{
		SourceExchange: p + ".in",
		SourceQueue:    p + ".in.q",
		TargetExchange: p + ".out",
		TargetQueue:    p + ".out.q",
	}
}

// sourceQueueArgs are the arguments the router declares its source queue with (a classic
// queue, named explicitly): the benchmark declares the queue first, to fill it before the
// router starts, so they must be equal or the router's declaration fails.
var sourceQueueArgs = amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeClassic}

// Broker is the benchmark's own connection to RabbitMQ, for declaring, filling and watching.
type Broker struct {
	URL  string
	conn *amqp.Connection
}

// Dial connects to the broker at url.
func Dial(url string) (*Broker, error) {
	conn, err := dial(url)
	if err != nil {
		return nil, err
	}
	return &Broker{URL: url, conn: conn}, nil
}

func dial(url string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("wasmrouter-bench")
	conn, err := amqp.DialConfig(url, amqp.Config{Properties: props, Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		return nil, fmt.Errorf("bench: dial: %w", err)
	}
	return conn, nil
}

// Close closes the connection.
func (b *Broker) Close() error { return b.conn.Close() }

// reconnectFor is how long channel keeps redialling a broker that closed the connection
// (restarted, or an operator closed it): long enough to clean up after such a run.
const reconnectFor = time.Minute

// channel opens a channel, first reconnecting if the broker closed the connection.
func (b *Broker) channel() (*amqp.Channel, error) {
	if b.conn.IsClosed() {
		var err error
		for deadline := time.Now().Add(reconnectFor); ; time.Sleep(time.Second) {
			var conn *amqp.Connection
			if conn, err = dial(b.URL); err == nil {
				b.conn = conn
				break
			}
			if time.Now().After(deadline) {
				return nil, err
			}
		}
	}
	ch, err := b.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("bench: channel: %w", err)
	}
	return ch, nil
}

// Version is the broker's version as it announces itself.
func (b *Broker) Version() string {
	if v, ok := b.conn.Properties["version"].(string); ok {
		return v
	}
	return "unknown"
}

// withChannel runs fn on a channel of its own: a failed declaration closes the channel.
func (b *Broker) withChannel(fn func(*amqp.Channel) error) error {
	ch, err := b.channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return fn(ch)
}

// Declare declares the source exchange and queue exactly as the router would (durable topic
// exchange, durable classic queue bound with "#") and the target exchange with a durable
// queue bound with "#" that collects what the consumer under test republishes.
func (b *Broker) Declare(t Topology) error {
	if err := b.DeclareTarget(t.SourceExchange, t.SourceQueue, sourceQueueArgs); err != nil {
		return err
	}
	return b.DeclareTarget(t.TargetExchange, t.TargetQueue, nil)
}

// DeclareTarget declares a durable topic exchange and a durable queue bound to it with "#".
func (b *Broker) DeclareTarget(exchange, queue string, args amqp.Table) error {
	return b.withChannel(func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			return fmt.Errorf("bench: declare exchange %s: %w", exchange, err)
		}
		if _, err := ch.QueueDeclare(queue, true, false, false, false, args); err != nil {
			return fmt.Errorf("bench: declare queue %s: %w", queue, err)
		}
		if err := ch.QueueBind(queue, "#", exchange, false, nil); err != nil {
			return fmt.Errorf("bench: bind queue %s: %w", queue, err)
		}
		return nil
	})
}

// Delete deletes the topology's queues and exchanges; it goes on after an error and returns
// the first.
func (b *Broker) Delete(t Topology) error {
	return errors.Join(
		b.DeleteTarget(t.SourceExchange, t.SourceQueue),
		b.DeleteTarget(t.TargetExchange, t.TargetQueue),
	)
}

// DeleteTarget deletes a queue and an exchange.
func (b *Broker) DeleteTarget(exchange, queue string) error {
	return b.withChannel(func(ch *amqp.Channel) error {
		if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
			return fmt.Errorf("bench: delete queue %s: %w", queue, err)
		}
		if err := ch.ExchangeDelete(exchange, false, false); err != nil {
			return fmt.Errorf("bench: delete exchange %s: %w", exchange, err)
		}
		return nil
	})
}

// QueueState is a queue's ready message count and consumer count.
type QueueState struct{ Messages, Consumers int }

// Queue inspects a queue with a passive declaration.
func (b *Broker) Queue(name string) (QueueState, error) {
	var s QueueState
	err := b.withChannel(func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("bench: queue %s: %w", name, err)
		}
		s = QueueState{Messages: q.Messages, Consumers: q.Consumers}
		return nil
	})
	return s, err
}

// WaitQueue polls the queue every interval until cond holds, and returns the time it was
// first seen to hold. It gives up with ErrTimeout when ctx ends and returns early with
// failed's error when failed (nil allowed) is closed.
func (b *Broker) WaitQueue(ctx context.Context, name string, every time.Duration, failed <-chan struct{}, cond func(QueueState) bool) (time.Time, QueueState, error) {
	ch, err := b.channel()
	if err != nil {
		return time.Time{}, QueueState{}, err
	}
	defer ch.Close()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last QueueState
	for {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		now := time.Now()
		if err != nil {
			return now, last, fmt.Errorf("bench: queue %s: %w", name, err)
		}
		last = QueueState{Messages: q.Messages, Consumers: q.Consumers}
		if cond(last) {
			return now, last, nil
		}
		select {
		case <-tick.C:
		case <-failed:
			return now, last, errors.New("bench: the consumer under test exited early")
		case <-ctx.Done():
			return now, last, fmt.Errorf("%w waiting for queue %s (last seen: %d messages, %d consumers)",
				ErrTimeout, name, last.Messages, last.Consumers)
		}
	}
}
