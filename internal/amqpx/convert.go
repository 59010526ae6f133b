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
	return event.Table(toEvent.Table(t))
}

// toEvent walks amqp091-go's values into the event's.
var toEvent = event.Walker{
	AsTable:   func(v any) (map[string]any, bool) { t, ok := v.(amqp.Table); return t, ok },
	MakeTable: event.MakeEventTable,
	Leaf: func(v any) any {
		switch x := v.(type) {
		case amqp.Decimal:
			return event.Decimal{Scale: x.Scale, Value: x.Value}
		case time.Time:
			return x.UTC()
		case int:
			// amqp091-go writes a Go int as a 32-bit signed integer ('I'); keep that type.
			return int32(x)
		}
		return v
	},
}

// TableFromEvent converts an event table into an AMQP field table for publishing. Values of a
// type AMQP cannot carry are passed through unchanged, so that publishing fails with the
// library's table validation error instead of silently changing the value.
// A nil table stays nil. A table with no nested table or decimal is the same map under
// amqp091-go's type: the result may share t's memory.
func TableFromEvent(t event.Table) amqp.Table {
	if t == nil {
		return nil
	}
	if !needsConversion(t) {
		return amqp.Table(t)
	}
	return amqp.Table(fromEvent.Table(t))
}

// fromEvent walks the event's values into amqp091-go's.
var fromEvent = event.Walker{
	AsTable:   event.AsEventTable,
	MakeTable: func(entries map[string]any) any { return amqp.Table(entries) },
	Leaf: func(v any) any {
		if x, ok := v.(event.Decimal); ok {
			return amqp.Decimal{Scale: x.Scale, Value: x.Value}
		}
		return v
	},
}

// needsConversion reports whether a value of t, at any depth, has an event type that amqp091-go
// does not know (a nested table or a decimal).
func needsConversion(t event.Table) bool {
	for _, v := range t {
		if valueNeedsConversion(v) {
			return true
		}
	}
	return false
}

func valueNeedsConversion(v any) bool {
	switch x := v.(type) {
	case event.Table, map[string]any, event.Decimal:
		return true
	case []any:
		for _, e := range x {
			if valueNeedsConversion(e) {
				return true
			}
		}
	}
	return false
}

// tableToEventInPlace is TableToEvent for a table nothing else holds: the values that need
// another type are replaced in t itself, which then becomes the event's table. A consumed
// message's headers are decoded once (by amqp091-go) instead of decoded, then copied value by
// value into a second map (BENCHMARKS.md, "Memory").
func tableToEventInPlace(t amqp.Table) event.Table {
	for k, v := range t {
		if nv, changed := valueToEventInPlace(v); changed {
			t[k] = nv
		}
	}
	return event.Table(t)
}

// valueToEventInPlace converts v as toEvent does, rewriting nested tables and arrays in place;
// changed is false when v is already the event's value.
func valueToEventInPlace(v any) (out any, changed bool) {
	switch x := v.(type) {
	case amqp.Table:
		if x == nil {
			return event.Table(nil), true
		}
		return tableToEventInPlace(x), true
	case []any:
		for i, e := range x {
			if ne, ok := valueToEventInPlace(e); ok {
				x[i] = ne
			}
		}
		return x, false
	case amqp.Decimal, time.Time, int:
		return toEvent.Leaf(v), true
	}
	return v, false
}

// EventFromDelivery builds the event for a consumed message. It copies every property; an
// absent timestamp stays the zero time, a present one is kept in UTC. IngestTime is now (UTC).
// The body is shared with the delivery, which amqp091-go allocates afresh for every message;
// the headers are a converted copy, and d is left as it was.
func EventFromDelivery(d *amqp.Delivery, source string) *event.Event {
	ev := new(event.Event)
	eventFromDelivery(ev, d, source, TableToEvent(d.Headers))
	return ev
}

// takeDelivery is EventFromDelivery into ev for a delivery nothing else holds: its headers
// table becomes the event's (converted in place, the x-router-* headers removed from it).
func takeDelivery(ev *event.Event, d *amqp.Delivery, source string) {
	var h event.Table
	if d.Headers != nil {
		h = tableToEventInPlace(d.Headers)
	}
	eventFromDelivery(ev, d, source, h)
}

func eventFromDelivery(ev *event.Event, d *amqp.Delivery, source string, headers event.Table) {
	*ev = event.Event{
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
		Headers:    headers,
		Body:       d.Body,
		IngestTime: time.Now().UTC(),
	}
	if !d.Timestamp.IsZero() {
		ev.Props.Timestamp = d.Timestamp.UTC()
	}
	// Only the router sets x-router-* headers (docs/headers.md).
	event.StripRouterHeaders(ev.Headers)
}

// Publishing builds the message to publish for an event: every property, the headers (a fresh,
// non-nil table: the caller adds to it without touching the event) and the body. The exchange
// and routing key are the caller's to choose.
func Publishing(ev *event.Event) amqp.Publishing {
	msg := PublishingOf(&event.Message{Props: ev.Props, Headers: ev.Headers.Clone(), Body: ev.Body})
	if msg.Headers == nil {
		msg.Headers = make(amqp.Table, 4)
	}
	return msg
}
