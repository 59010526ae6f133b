package amqpx

import (
	"context"
	"fmt"
	"net/url"
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// allTypes holds one header of every type the event table allows.
func allTypes() event.Table {
	return event.Table{
		"nil":     nil,
		"true":    true,
		"false":   false,
		"int8":    int8(-8),
		"uint8":   uint8(200),
		"int16":   int16(-1600),
		"uint16":  uint16(65000),
		"int32":   int32(-320000),
		"uint32":  uint32(4000000000),
		"int64":   int64(-1 << 62),
		"float32": float32(1.5),
		"float64": float64(-2.25),
		"decimal": event.Decimal{Scale: 2, Value: -12345},
		"string":  "héllo",
		"bytes":   []byte{0, 1, 2, 255},
		"time":    time.Unix(1700000000, 0).UTC(),
		"table": event.Table{
			"inner": int16(7),
			"deeper": event.Table{
				"list": []any{uint8(1), "two"},
			},
		},
		"array": []any{int8(1), int64(2), "three", []byte("four"), event.Decimal{Scale: 1, Value: 5},
			event.Table{"k": float32(6)}, []any{uint16(7)}, nil, true, time.Unix(8, 0).UTC()},
		"empty-array": []any{},
		"empty-table": event.Table{},
	}
}

// sameTyped reports whether a and b hold equal values of identical types, recursively.
func sameTyped(a, b any) error {
	if reflect.TypeOf(a) != reflect.TypeOf(b) {
		return fmt.Errorf("type %T, want %T", a, b)
	}
	switch x := a.(type) {
	case event.Table:
		y := b.(event.Table)
		if len(x) != len(y) {
			return fmt.Errorf("table has %d keys, want %d", len(x), len(y))
		}
		for k, v := range y {
			if err := sameTyped(x[k], v); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	case []any:
		y := b.([]any)
		if len(x) != len(y) {
			return fmt.Errorf("array has %d elements, want %d", len(x), len(y))
		}
		for i := range y {
			if err := sameTyped(x[i], y[i]); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
	case time.Time:
		if !x.Equal(b.(time.Time)) || x.Location() != time.UTC {
			return fmt.Errorf("time %v, want %v in UTC", x, b)
		}
	default:
		if !reflect.DeepEqual(a, b) {
			return fmt.Errorf("%#v, want %#v", a, b)
		}
	}
	return nil
}

func TestTableConversionKeepsTypes(t *testing.T) {
	in := allTypes()
	out := TableToEvent(TableFromEvent(in))
	if err := sameTyped(out, in); err != nil {
		t.Fatal(err)
	}
	if _, ok := TableFromEvent(in)["decimal"].(amqp.Decimal); !ok {
		t.Fatal("event.Decimal not converted to amqp.Decimal")
	}
	if _, ok := TableFromEvent(in)["table"].(amqp.Table); !ok {
		t.Fatal("nested event.Table not converted to amqp.Table")
	}
	if TableToEvent(nil) != nil || TableFromEvent(nil) != nil {
		t.Fatal("nil tables must stay nil")
	}
	// A Go int is written as a 32-bit integer on the wire.
	if v := TableToEvent(amqp.Table{"n": 5})["n"]; v != int32(5) {
		t.Fatalf("int converted to %T", v)
	}
	// Local times come back in UTC.
	local := time.Unix(100, 0).In(time.FixedZone("x", 3600))
	if v := TableToEvent(amqp.Table{"t": local})["t"].(time.Time); v.Location() != time.UTC || !v.Equal(local) {
		t.Fatalf("time converted to %v", v)
	}
}

// TestTakeDeliveryConvertsInPlace checks that the consumer's conversion, which reuses the
// delivery's own headers table, gives the event what the copying conversion gives.
func TestTakeDeliveryConvertsInPlace(t *testing.T) {
	delivery := func() *amqp.Delivery {
		h := TableFromEvent(allTypes())
		h["local"] = time.Unix(100, 0).In(time.FixedZone("x", 3600))
		h["nested-local"] = amqp.Table{"t": time.Unix(200, 0).In(time.FixedZone("y", -3600))}
		h[event.HeaderSeq] = int64(7) // only the router sets x-router-* headers
		return &amqp.Delivery{RoutingKey: "k", Headers: h, Body: []byte("b")}
	}
	want := EventFromDelivery(delivery(), "src")
	d := delivery()
	got := new(event.Event)
	takeDelivery(got, d, "src")
	if err := sameTyped(got.Headers, want.Headers); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Headers[event.HeaderSeq]; ok {
		t.Fatal("x-router-* header kept")
	}
	if reflect.ValueOf(got.Headers).UnsafePointer() != reflect.ValueOf(d.Headers).UnsafePointer() {
		t.Fatal("the delivery's table was copied, not reused")
	}
	if takeDelivery(got, &amqp.Delivery{}, "src"); got.Headers != nil {
		t.Fatal("absent headers must stay nil")
	}
}

func TestEventFromDeliveryAndPublishing(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	d := &amqp.Delivery{
		Exchange: "ex", RoutingKey: "a.b",
		ContentType: "application/json", ContentEncoding: "gzip", DeliveryMode: 2, Priority: 3,
		CorrelationId: "corr", ReplyTo: "reply", Expiration: "1000", MessageId: "mid",
		Timestamp: ts, Type: "typ", UserId: "guest", AppId: "app",
		Headers: amqp.Table{"n": int16(1)}, Body: []byte("body"),
	}
	before := time.Now()
	ev := EventFromDelivery(d, "src")
	want := event.Properties{ContentType: "application/json", ContentEncoding: "gzip", DeliveryMode: 2, Priority: 3,
		CorrelationID: "corr", ReplyTo: "reply", Expiration: "1000", MessageID: "mid",
		Timestamp: ts.UTC(), Type: "typ", UserID: "guest", AppID: "app"}
	if ev.Props != want {
		t.Fatalf("props %+v, want %+v", ev.Props, want)
	}
	if ev.Source != "src" || ev.Exchange != "ex" || ev.RoutingKey != "a.b" || string(ev.Body) != "body" || ev.Seq != 0 {
		t.Fatalf("event %+v", ev)
	}
	if ev.Headers["n"] != int16(1) {
		t.Fatalf("headers %v", ev.Headers)
	}
	if ev.IngestTime.Location() != time.UTC || ev.IngestTime.Before(before.Add(-time.Second)) {
		t.Fatalf("ingest time %v", ev.IngestTime)
	}

	p := Publishing(ev)
	back := amqp.Delivery{Headers: p.Headers, ContentType: p.ContentType, ContentEncoding: p.ContentEncoding,
		DeliveryMode: p.DeliveryMode, Priority: p.Priority, CorrelationId: p.CorrelationId, ReplyTo: p.ReplyTo,
		Expiration: p.Expiration, MessageId: p.MessageId, Timestamp: p.Timestamp, Type: p.Type, UserId: p.UserId,
		AppId: p.AppId, Body: p.Body}
	if got := EventFromDelivery(&back, "src").Props; got != want {
		t.Fatalf("Publishing lost properties: %+v", got)
	}

	d.Timestamp = time.Time{}
	d.Headers = nil
	ev = EventFromDelivery(d, "src")
	if !ev.Props.Timestamp.IsZero() || ev.Headers != nil {
		t.Fatalf("absent timestamp/headers became %v / %v", ev.Props.Timestamp, ev.Headers)
	}
	if h := Publishing(ev).Headers; h == nil {
		t.Fatal("Publishing must return a non-nil headers table for the router's headers")
	}
	d.Timestamp = time.Unix(0, 0)
	if ts := EventFromDelivery(d, "src").Props.Timestamp; ts.IsZero() || ts.Unix() != 0 {
		t.Fatalf("epoch timestamp became %v", ts)
	}
}

// TestHeaderTypesRoundTripThroughBroker publishes an event with every header type through the
// Publisher and reads it back through Consume: types and properties must come back exactly.
func TestHeaderTypesRoundTripThroughBroker(t *testing.T) {
	conn := rabbit.Dial(t)
	c := startCluster(t, rabbit.URL(), fastOptions(nil))
	ch := rabbit.Channel(t, conn)
	ex := rabbit.Unique("test.rt")
	src := config.SourceSpec{Name: "rt", Exchange: ex, Queue: rabbit.Unique("test.rt.q"), Bindings: []string{"rt.#"}}
	rabbit.DeleteExchangeAtCleanup(t, ex)
	rabbit.DeleteQueueAtCleanup(t, src.Queue)
	if err := DeclareSource(ch, src); err != nil {
		t.Fatal(err)
	}

	user := "guest"
	if u, err := url.Parse(rabbit.URL()); err == nil && u.User != nil {
		user = u.User.Username()
	}
	sent := &event.Event{
		RoutingKey: "rt.key",
		Props: event.Properties{ContentType: "application/octet-stream", ContentEncoding: "identity",
			DeliveryMode: 2, Priority: 4, CorrelationID: "c-1", ReplyTo: "r", Expiration: "600000",
			MessageID: "m-1", Timestamp: time.Unix(1700000001, 0).UTC(), Type: "t", UserID: user, AppID: "a"},
		Headers: allTypes(),
		Body:    []byte{0, 1, 2, 3},
	}

	got := make(chan *Delivery, 1)
	startConsume(t, c, src, func(d *Delivery) { got <- d }, nil)
	ctx := context.Background()

	pub := c.NewPublisher()
	defer pub.Close()
	waitConnected(t, c, true)
	conf, err := pub.Publish(ctx, ex, sent.RoutingKey, Publishing(sent))
	if err != nil {
		t.Fatal(err)
	}
	if err := conf.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var d *Delivery
	select {
	case d = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("message not consumed")
	}
	if err := d.AckThrough(); err != nil {
		t.Fatal(err)
	}
	ev := d.Event
	if err := sameTyped(ev.Headers, sent.Headers); err != nil {
		t.Fatalf("headers: %v", err)
	}
	if ev.Props != sent.Props {
		t.Fatalf("properties\n got %+v\nwant %+v", ev.Props, sent.Props)
	}
	if ev.Exchange != ex || ev.RoutingKey != sent.RoutingKey || ev.Source != "rt" || string(ev.Body) != string(sent.Body) {
		t.Fatalf("event %+v", ev)
	}
}
