package amqpx

import (
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/config"
)

// Source defaults, as documented in docs/configuration.md.
const (
	DefaultPrefetch  = 256
	DefaultQueueType = "classic"
)

// DeclareExchange declares name as a durable topic exchange, or checks that it is one. If it
// exists with another type or durability, the broker's error is returned (and the broker closes
// the channel). The default exchange ("") needs no declaring.
func DeclareExchange(ch *amqp.Channel, name string) error {
	if name == "" {
		return nil
	}
	if err := ch.ExchangeDeclare(name, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %q (durable topic): %w", name, err)
	}
	return nil
}

// DeclareSource declares what a source consumes from: its exchange (a durable topic exchange,
// created if absent), its durable queue with the configured type, delivery limit and
// dead-letter exchange, and the bindings (default "#"). A conflict with what already exists is
// the broker's error, and closes the channel.
func DeclareSource(ch *amqp.Channel, s config.SourceSpec) error {
	args, err := queueArgs(s)
	if err != nil {
		return err
	}
	if err := DeclareExchange(ch, s.Exchange); err != nil {
		return fmt.Errorf("source %s: %w", s.Name, err)
	}
	if _, err := ch.QueueDeclare(s.Queue, true, false, false, false, args); err != nil {
		return fmt.Errorf("source %s: declare queue %q: %w", s.Name, s.Queue, err)
	}
	if s.Exchange == "" {
		// Every queue is bound to the default exchange by its name; nothing else can be.
		return nil
	}
	for _, key := range bindings(s) {
		if err := ch.QueueBind(s.Queue, key, s.Exchange, false, nil); err != nil {
			return fmt.Errorf("source %s: bind queue %q to exchange %q with key %q: %w", s.Name, s.Queue, s.Exchange, key, err)
		}
	}
	return nil
}

func bindings(s config.SourceSpec) []string {
	if len(s.Bindings) == 0 {
		return []string{"#"}
	}
	return s.Bindings
}

// queueArgs are the declaration arguments. x-queue-type is always given, so that a queue that
// exists with another type is reported rather than silently used.
func queueArgs(s config.SourceSpec) (amqp.Table, error) {
	qt := s.QueueType
	if qt == "" {
		qt = DefaultQueueType
	}
	if qt != amqp.QueueTypeClassic && qt != amqp.QueueTypeQuorum {
		return nil, fmt.Errorf("source %s: queue_type %q: want classic or quorum", s.Name, qt)
	}
	args := amqp.Table{amqp.QueueTypeArg: qt}
	if s.DeliveryLimit > 0 {
		if qt != amqp.QueueTypeQuorum {
			return nil, fmt.Errorf("source %s: delivery_limit needs queue_type quorum", s.Name)
		}
		args["x-delivery-limit"] = int64(s.DeliveryLimit)
	}
	if s.DeadLetterExchange != "" {
		args["x-dead-letter-exchange"] = s.DeadLetterExchange
	}
	return args, nil
}

func prefetch(s config.SourceSpec) (int, error) {
	switch {
	case s.Prefetch == 0:
		return DefaultPrefetch, nil
	case s.Prefetch < 0 || s.Prefetch > 65535:
		return 0, fmt.Errorf("source %s: prefetch %d: want 1 to 65535", s.Name, s.Prefetch)
	}
	return s.Prefetch, nil
}

// checkSource catches what would make every declaration attempt fail the same way.
func checkSource(s config.SourceSpec) error {
	if s.Queue == "" {
		return errors.New("source " + s.Name + ": queue is empty")
	}
	if _, err := queueArgs(s); err != nil {
		return err
	}
	_, err := prefetch(s)
	return err
}
