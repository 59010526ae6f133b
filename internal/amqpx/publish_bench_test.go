package amqpx

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// BenchmarkPublishConfirm publishes as a delivery stream does, against the broker: bursts of
// 50 messages of 1 KiB with the router's headers, held into few writes, then each confirm
// waited for in order. Besides time and allocations it reports the process's CPU time and
// voluntary context switches (threads that blocked: goroutine hand-offs that found no running
// thread) per publish, which vary less with other load than time does.
func BenchmarkPublishConfirm(b *testing.B) {
	_, ex, _, pub := newTargetPublisher(b)
	ctx := context.Background()
	body := make([]byte, 1024)
	const burst = 50
	confs := make([]*Confirm, 0, burst)
	b.ReportAllocs()
	u0 := rusage(b)
	b.ResetTimer()
	for i := 0; i < b.N; {
		release := pub.Hold()
		for j := 0; j < burst && i < b.N; j++ {
			msg := amqp.Publishing{
				Headers: amqp.Table{
					"x-router-route": "bench", "x-router-source": "bench-source", "x-router-seq": int64(i),
				},
				MessageId:    fmt.Sprint("m-", i),
				DeliveryMode: 1, // transient: the broker's fsyncs would make the waits, not the client
				Body:         body,
			}
			c, err := pub.Publish(ctx, ex, "ok.bench", msg)
			if err != nil {
				b.Fatal(err)
			}
			confs = append(confs, c)
			i++
		}
		release()
		for _, c := range confs {
			<-c.Done()
			if err := c.Err(); err != nil {
				b.Fatal(err)
			}
		}
		confs = confs[:0]
	}
	b.StopTimer()
	u1 := rusage(b)
	cpu := (u1.Utime.Nano() + u1.Stime.Nano()) - (u0.Utime.Nano() + u0.Stime.Nano())
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(u1.Nvcsw-u0.Nvcsw)/float64(b.N), "vcsw/op")
}

func rusage(b *testing.B) syscall.Rusage {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatal(err)
	}
	return u
}
