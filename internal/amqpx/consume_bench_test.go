package amqpx

import (
	"runtime/metrics"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// BenchmarkConsume consumes b.N messages of 1 KiB, published into a queue beforehand, with a
// prefetch of 1,000 and an acknowledgement (multiple) every 100, as a source does between the
// broker and its handler. It reports the process's CPU time and voluntary context switches
// per delivery (see BenchmarkPublishConfirm), and goroutines scheduled per delivery.
func BenchmarkConsume(b *testing.B) {
	conn := rabbit.Dial(b)
	ch := rabbit.Channel(b, conn)
	exchange, queue := declareTarget(b, ch)
	body := make([]byte, 1024)
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if _, err := ch.PublishWithDeferredConfirm(exchange, "ok.bench", false, false,
			amqp.Publishing{Headers: amqp.Table{"n": int64(i)}, DeliveryMode: 1, Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := ch.PublishWithDeferredConfirm(exchange, "ok.bench", false, false, amqp.Publishing{Body: body}); err != nil {
		b.Fatal(err)
	}
	// Every publish confirmed: the queue holds them all.
	deadline := time.Now().Add(time.Minute)
	for {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		if q.Messages >= b.N+1 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages in the queue", q.Messages, b.N+1)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cch := rabbit.Channel(b, conn)
	if err := cch.Qos(1000, 0, false); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	u0, s0 := rusage(b), schedulings()
	b.ResetTimer()
	deliveries, err := cch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := 1; i <= b.N; i++ {
		d, ok := <-deliveries
		if !ok {
			b.Fatal("deliveries ended")
		}
		if i%100 == 0 || i == b.N {
			if err := d.Ack(true); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	u1, s1 := rusage(b), schedulings()
	b.ReportMetric(float64(s1-s0)/float64(b.N), "sched/op")
	cpu := (u1.Utime.Nano() + u1.Stime.Nano()) - (u0.Utime.Nano() + u0.Stime.Nano())
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(u1.Nvcsw-u0.Nvcsw)/float64(b.N), "vcsw/op")
}

// schedulings counts the goroutines made to run so far, from the runtime's scheduling latency
// histogram, which samples one in eight of them.
func schedulings() uint64 {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	var n uint64
	for _, c := range s[0].Value.Float64Histogram().Counts {
		n += c
	}
	return 8 * n
}
