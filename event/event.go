// Package event defines the event that flows through wasmrouter: a message as it was consumed
// from a source, with every AMQP property and header kept with its exact type so that it can be
// logged and republished faithfully. It imports only the standard library so that every other
// package (store, filters, wasmhost, the AMQP adapters) can share it without import cycles.
package event

import (
	"strings"
	"time"
)

// Headers added to every delivered message (docs/headers.md).
const (
	HeaderRoute    = "x-router-route"    // string: the route that delivered the message
	HeaderSource   = "x-router-source"   // string: the source it was consumed from
	HeaderSeq      = "x-router-seq"      // int64: the log sequence number (emitted events: the parent's)
	HeaderReplay   = "x-router-replay"   // bool true on replayed deliveries
	HeaderError    = "x-router-error"    // string: why a dead-lettered message failed
	HeaderAttempts = "x-router-attempts" // int32: tries made before dead-lettering
)

// RouterHeaderPrefix starts every header the router sets. Only the router sets them: they are
// removed from consumed messages (a publisher's x-router-error must not make a delivery pass
// for a dead letter) and guests may not set them.
const RouterHeaderPrefix = "x-router-"

// IsRouterHeader reports whether name starts with RouterHeaderPrefix, in any case.
func IsRouterHeader(name string) bool {
	return len(name) >= len(RouterHeaderPrefix) && strings.EqualFold(name[:len(RouterHeaderPrefix)], RouterHeaderPrefix)
}

// StripRouterHeaders removes the router's headers from a consumed message's table and
// reports how many there were.
func StripRouterHeaders(h Table) int {
	n := 0
	for name := range h {
		if IsRouterHeader(name) {
			delete(h, name)
			n++
		}
	}
	return n
}

// MaxKeyLen is the longest routing key or binding pattern AMQP 0-9-1 allows (a shortstr).
const MaxKeyLen = 255

// Event is one message in the log. Seq is zero until the log assigns it.
type Event struct {
	Seq        uint64
	Source     string // the source block's name
	Exchange   string // the exchange it was published to
	RoutingKey string
	Props      Properties
	Headers    Table
	Body       []byte
	IngestTime time.Time // when the router received it (UTC, nanoseconds)
	// Routes is which routes took the event when it was ingested. The log does not store
	// it: only an event still in memory since its append carries it, and an event read back
	// has the zero value.
	Routes RouteMatch
	// LoggedHeaders is Headers in the log's own encoding, when the log read the event back
	// for a delivery stream (nil otherwise, and for an empty table): a message that carries
	// Headers unchanged can then be encoded from these bytes instead of from the map (the
	// log's AppendAMQPHeaders). A stream that encodes every message that way has the log leave
	// the table undecoded: then Headers is nil until decoded from these bytes (the log's
	// DecodeLoggedHeaders). The bytes are never written to. Clones drop them, and whoever
	// changes Headers in place must set LoggedHeaders to nil.
	LoggedHeaders []byte
}

// MemSize estimates the bytes an event holds in memory: its body, strings and headers, and
// the struct and map overhead around them. Buffers of events (the log's ring of recent events,
// a stream's confirm window) are bounded with it, so that large messages cannot make them
// hold the process's memory hostage.
func (ev *Event) MemSize() int {
	p := &ev.Props
	return 256 + len(ev.Body) + len(ev.Source) + len(ev.Exchange) + len(ev.RoutingKey) +
		len(p.ContentType) + len(p.ContentEncoding) + len(p.CorrelationID) + len(p.ReplyTo) +
		len(p.Expiration) + len(p.MessageID) + len(p.Type) + len(p.UserID) + len(p.AppID) +
		64*len(ev.Headers) + ev.undecodedHeaders()
}

// undecodedHeaders is the size of a header table left in LoggedHeaders, undecoded (Headers
// nil): about what its entries would take in a map.
func (ev *Event) undecodedHeaders() int {
	if ev.Headers != nil {
		return 0
	}
	return 2 * len(ev.LoggedHeaders)
}

// Properties are the AMQP basic properties other than headers.
type Properties struct {
	ContentType     string
	ContentEncoding string
	DeliveryMode    uint8 // 1 transient, 2 persistent
	Priority        uint8
	CorrelationID   string
	ReplyTo         string
	Expiration      string
	MessageID       string
	Timestamp       time.Time // zero when absent
	Type            string
	UserID          string
	AppID           string
}

// Table is an AMQP field table. Its values keep their AMQP types; the allowed Go types are:
// nil, bool, int8, uint8, int16, uint16, int32, uint32, int64, float32, float64, Decimal,
// string, []byte, time.Time, Table and []any (of the same types).
type Table map[string]any

// Decimal is an AMQP decimal value: Value / 10^Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// Clone returns a deep copy of the event, so that a transform can change it without touching
// the original (which other routes and targets still read).
func (e *Event) Clone() *Event {
	c := *e
	c.Headers = e.Headers.Clone()
	c.LoggedHeaders = nil // the copy's headers are the transform's to change
	if e.Body != nil {
		c.Body = append([]byte(nil), e.Body...)
	}
	return &c
}

// CloneSharingBody is Clone without copying the body, for a copy whose body is only ever
// replaced, never written into (what a transform does to the event it is given): the body is
// the largest part of an event, and most transforms leave it or set a new one.
func (e *Event) CloneSharingBody() *Event {
	c := *e
	c.Headers = e.Headers.Clone()
	c.LoggedHeaders = nil
	return &c
}

// Clone returns a deep copy of the table.
func (t Table) Clone() Table {
	if t == nil {
		return nil
	}
	return Table(cloner.Table(t))
}
