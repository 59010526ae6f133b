package amqp091

import (
	"fmt"
	"testing"
	"time"
)

// TestConsumerDirectDeliveries: while the delivery channel has room, deliveries go straight
// into it, without the buffer goroutine.
func TestConsumerDirectDeliveries(t *testing.T) {
	subs := makeConsumers()
	out := make(chan Delivery, 8)
	subs.add("ctag", out, consumerConfig{})
	for i := 1; i <= 8; i++ {
		if !subs.send("ctag", Delivery{DeliveryTag: uint64(i)}) {
			t.Fatal("consumer not found")
		}
	}
	if len(out) != 8 {
		t.Fatalf("%d deliveries in the channel, want all 8 sent directly", len(out))
	}
	if held := subs.chans["ctag"].held.Load(); held != 0 {
		t.Fatalf("buffer goroutine holds %d", held)
	}
	for i := 1; i <= 8; i++ {
		if d := <-out; d.DeliveryTag != uint64(i) {
			t.Fatalf("delivery %d has tag %d", i, d.DeliveryTag)
		}
	}
	subs.close()
}

// TestConsumerDeliveriesInOrder: a consumer slower than the reader gets every delivery in
// order, whether it went straight into the channel or through the buffer goroutine, and the
// channel closes after the last one once the consumer is cancelled.
func TestConsumerDeliveriesInOrder(t *testing.T) {
	const n = 5000
	subs := makeConsumers()
	out := make(chan Delivery, 4)
	subs.add("ctag", out, consumerConfig{})
	got := make(chan error, 1)
	go func() {
		want := uint64(1)
		for d := range out {
			if d.DeliveryTag != want {
				got <- fmt.Errorf("delivery tag %d, want %d", d.DeliveryTag, want)
				for range out {
				}
				return
			}
			want++
			if want%97 == 0 {
				time.Sleep(time.Millisecond) // fall behind: the buffer goroutine takes over
			}
		}
		if want != n+1 {
			got <- fmt.Errorf("%d deliveries, want %d", want-1, n)
			return
		}
		got <- nil
	}()
	for i := 1; i <= n; i++ {
		if !subs.send("ctag", Delivery{DeliveryTag: uint64(i)}) {
			t.Fatal("consumer not found")
		}
	}
	subs.cancel("ctag")
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("deliveries not all received")
	}
	subs.close()
}

// TestConsumerDeliveriesDroppedOnClose: deliveries still in the channel when the AMQP channel
// closes are dropped, as upstream drops those its buffer goroutine held.
func TestConsumerDeliveriesDroppedOnClose(t *testing.T) {
	subs := makeConsumers()
	out := make(chan Delivery, 8)
	subs.add("ctag", out, consumerConfig{})
	for i := 1; i <= 4; i++ {
		subs.send("ctag", Delivery{DeliveryTag: uint64(i)})
	}
	subs.close()
	if d, ok := <-out; ok {
		t.Fatalf("delivery %d received after the close", d.DeliveryTag)
	}
}
