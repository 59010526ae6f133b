package amqpx

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// BenchmarkDeliveryToEvent is the consumer's conversion of a delivery like the end-to-end
// benchmark's (two headers): "copy" is how it was done before, a Delivery and
// EventFromDelivery (which leaves the delivery as it was); "in-place" is newDelivery, which
// reuses the delivery's headers table and allocates the event with the delivery.
func BenchmarkDeliveryToEvent(b *testing.B) {
	delivery := func() *amqp.Delivery {
		return &amqp.Delivery{RoutingKey: "order.created", ContentType: "application/json", DeliveryMode: 2,
			MessageId: "run-1", Timestamp: time.Now(), AppId: "wasmrouter-bench",
			Headers: amqp.Table{"tenant": "acme", "x-bench-seq": int64(1)}, Body: make([]byte, 1024)}
	}
	for _, c := range []struct {
		name string
		fn   func(*amqp.Delivery, string) any
	}{
		{"copy", func(d *amqp.Delivery, s string) any {
			out := &Delivery{Tag: d.DeliveryTag}
			out.Event, out.Ack = EventFromDelivery(d, s), out
			return out
		}},
		{"in-place", func(d *amqp.Delivery, s string) any { return newDelivery(d, s, nil) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			ds := make([]*amqp.Delivery, b.N)
			for i := range ds {
				ds[i] = delivery()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				_ = c.fn(ds[i], "in")
			}
		})
	}
}
