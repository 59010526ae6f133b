package event

import (
	"bytes"
	"context"
	"errors"
	"strings"
)

// The vocabulary of the edges: what a source hands the engine, and what the engine hands a
// target publisher. The engine's Source and Publisher ports are defined with these types only,
// so that a broker client implements them without the engine knowing it.

// Delivery is one consumed message. Acknowledging a delivery acknowledges every earlier one of
// the same source (a position), so the engine acknowledges in delivery order.
type Delivery struct {
	Event       *Event
	Redelivered bool // the broker delivered it before (its acknowledgement may have been lost)
	// Undecodable, when not "", says why the message's headers could not be decoded: the
	// event has none of them, and the engine rejects the delivery without requeueing (the
	// source's dead-letter route keeps its own copy, headers intact).
	Undecodable string
	Ack         Acknowledger
}

// Acknowledger settles a delivery with its source.
type Acknowledger interface {
	// AckThrough acknowledges this delivery and every earlier one. On a connection that has
	// gone since, it does nothing: the broker delivers those messages again.
	AckThrough() error
	// Reject refuses this delivery alone: with requeue the source delivers it again, without
	// it the source drops or dead-letters it.
	Reject(requeue bool) error
}

// Message is one publish to a target: the exchange and routing key, the properties, headers and
// body. Headers belongs to the message (the publisher may convert it but not keep it).
type Message struct {
	Exchange   string
	RoutingKey string
	Props      Properties
	Headers    Table
	Body       []byte
	// EncodedHeaders, when set, are the headers already in AMQP 0-9-1's encoding of a field
	// table (its entries, without the table's length), and Headers is nil. Only a publisher
	// that says it takes them (TakesEncodedHeaders) is given such a message.
	EncodedHeaders []byte
}

// Clone copies m to the last byte, strings included: a message's strings and bytes may be
// views of memory its sender reuses once Publish returns (router.Publisher), so a publisher
// that keeps a message, as test targets do, keeps a clone.
func (m *Message) Clone() Message {
	c := *m
	c.Exchange, c.RoutingKey = strings.Clone(m.Exchange), strings.Clone(m.RoutingKey)
	p := &c.Props
	for _, f := range []*string{&p.ContentType, &p.ContentEncoding, &p.CorrelationID, &p.ReplyTo,
		&p.Expiration, &p.MessageID, &p.Type, &p.UserID, &p.AppID} {
		*f = strings.Clone(*f)
	}
	c.Headers = m.Headers.Clone()
	c.Body = bytes.Clone(m.Body)
	c.EncodedHeaders = bytes.Clone(m.EncodedHeaders)
	return c
}

// Confirmation is a publish waiting for the broker's answer.
type Confirmation interface {
	// Done is closed when the target has answered. Err may still wait, briefly, for the
	// publisher's own bookkeeping (matching a return or a close to the answer).
	Done() <-chan struct{}
	// Err, after Done: nil when the target took the message; an error matching ErrRefused when
	// it refused it; any other error is an outage (the message may or may not have arrived:
	// publish it again).
	Err() error
}

var (
	// ErrRefused matches a target that refused a message (unroutable, negatively confirmed, an
	// exchange that does not exist): a failure of that message, retried then dead-lettered.
	ErrRefused = errors.New("refused by the target")
	// ErrUnreachable matches a target that cannot be reached now (no connection, publishing
	// blocked, connection lost before the answer): an outage, waited out and never
	// dead-lettered.
	ErrUnreachable = errors.New("target unreachable")
	// ErrUnroutable matches, among refusals, a message no queue took (returned under the
	// mandatory flag): a target with unroutable = "drop" drops it instead.
	ErrUnroutable = errors.New("no queue took the message")
)

// IsOutage tells a target that cannot be reached (wait, never dead-letter) from one that refused
// the message (retry, then dead-letter): every error other than a refusal is an outage.
func IsOutage(err error) bool { return err != nil && !errors.Is(err, ErrRefused) }

// WaitDone waits for c's answer or for ctx to end.
func WaitDone(ctx context.Context, c Confirmation) error {
	select {
	case <-c.Done():
		return c.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}
