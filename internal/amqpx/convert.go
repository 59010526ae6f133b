package amqpx

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
)

// TableToEvent converts an AMQP field table into an event table, keeping every value's AMQP type
// (integer widths, floats, decimals, timestamps, byte arrays, arrays and nested tables).
// Timestamps are normalised to UTC. A nil table stays nil.
func TableToEvent(t amqp.Table) event.Table {
	if t == nil {
		return nil
	}
	out := make(event.Table, len(t))
	for k, v := range t {
		out[k] = valueToEvent(v)
	}
	return out
}

func valueToEvent(v any) any {
	switch x := v.(type) {
	case amqp.Table:
		return TableToEvent(x)
	case amqp.Decimal:
		return event.Decimal{Scale: x.Scale, Value: x.Value}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = valueToEvent(e)
		}
		return out
	case time.Time:
		return x.UTC()
	case int:
		// amqp091-go writes a Go int as a 32-bit signed integer ('I'); keep that type.
		return int32(x)
	default:
		return v
	}
}

// TableFromEvent converts an event table into an AMQP field table for publishing. Values of a
// type AMQP cannot carry are passed through unchanged, so that publishing fails with the
// library's table validation error instead of silently changing the value.
// A nil table stays nil.
func TableFromEvent(t event.Table) amqp.Table {
	if t == nil {
		return nil
	}
	out := make(amqp.Table, len(t))
	for k, v := range t {
		out[k] = valueFromEvent(v)
	}
	return out
}

func valueFromEvent(v any) any {
	switch x := v.(type) {
	case event.Table:
		return TableFromEvent(x)
	case map[string]any:
		return TableFromEvent(event.Table(x))
	case event.Decimal:
		return amqp.Decimal{Scale: x.Scale, Value: x.Value}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = valueFromEvent(e)
		}
		return out
	default:
		return v
	}
}

// EventFromDelivery builds the event for a consumed message. It copies every property; an
// absent timestamp stays the zero time, a present one is kept in UTC. IngestTime is now (UTC).
// The body is shared with the delivery, which amqp091-go allocates afresh for every message.
func EventFromDelivery(d *amqp.Delivery, source string) *event.Event {
	ev := &event.Event{
		Source:     source,
		Exchange:   d.Exchange,
		RoutingKey: d.RoutingKey,
		Props: event.Properties{
			ContentType:     d.ContentType,
			ContentEncoding: d.ContentEncoding,
			DeliveryMode:    d.DeliveryMode,
			Priority:        d.Priority,
			CorrelationID:   d.CorrelationId,
			ReplyTo:         d.ReplyTo,
			Expiration:      d.Expiration,
			MessageID:       d.MessageId,
			Type:            d.Type,
			UserID:          d.UserId,
			AppID:           d.AppId,
		},
		Headers:    TableToEvent(d.Headers),
		Body:       d.Body,
		IngestTime: time.Now().UTC(),
	}
	if !d.Timestamp.IsZero() {
		ev.Props.Timestamp = d.Timestamp.UTC()
	}
	// Only the router sets x-router-* headers (docs/headers.md).
	event.StripRouterHeaders(ev.Headers)
	return ev
}

// Publishing builds the message to publish for an event: every property, the headers (a fresh,
// non-nil table: the caller adds the router's headers to it without touching the event) and the
// body. The exchange and routing key are the caller's to choose.
func Publishing(ev *event.Event) amqp.Publishing {
	h := TableFromEvent(ev.Headers)
	if h == nil {
		h = make(amqp.Table, 4)
	}
	return amqp.Publishing{
		Headers:         h,
		ContentType:     ev.Props.ContentType,
		ContentEncoding: ev.Props.ContentEncoding,
		DeliveryMode:    ev.Props.DeliveryMode,
		Priority:        ev.Props.Priority,
		CorrelationId:   ev.Props.CorrelationID,
		ReplyTo:         ev.Props.ReplyTo,
		Expiration:      ev.Props.Expiration,
		MessageId:       ev.Props.MessageID,
		Timestamp:       ev.Props.Timestamp,
		Type:            ev.Props.Type,
		UserId:          ev.Props.UserID,
		AppId:           ev.Props.AppID,
		Body:            ev.Body,
	}
}
