package consumeloop

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

// TestRunKeepsConsumingAcrossAConnectionLoss cuts the consumer's network between two messages:
// both are kept, the second once the network is back (the first may be kept again, if its
// acknowledgement was lost in the cut).
func TestRunKeepsConsumingAcrossAConnectionLoss(t *testing.T) {
	conn := rabbit.Dial(t)
	ch := rabbit.Channel(t, conn)
	queue := rabbit.DeclareQueueBound(t, ch, "", "")
	proxy := tcpproxy.Start(t, rabbit.Addr(t))
	url := rabbit.URLVia(t, proxy.Addr())

	kept := make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		dial := func() (*amqp.Connection, error) {
			return amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
		}
		Run(ctx, Options{Dial: dial, Queue: queue, Prefetch: 10, RetryAfter: 20 * time.Millisecond},
			func(d *amqp.Delivery) {
				select {
				case kept <- d.MessageId:
				case <-ctx.Done():
				}
			})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitKept := func(want string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case id := <-kept:
				if id == want {
					return
				}
				if id != "before" {
					t.Fatalf("kept %q, waiting for %q", id, want)
				}
			case <-deadline:
				t.Fatalf("message %q not kept after 20s", want)
			}
		}
	}

	rabbit.PublishConfirmed(t, ch, "", queue, amqp.Publishing{MessageId: "before"})
	waitKept("before")
	proxy.Cut()
	rabbit.PublishConfirmed(t, ch, "", queue, amqp.Publishing{MessageId: "during"})
	proxy.Restore()
	waitKept("during")
}
