package e2e

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// TestRedeliveredIdenticalMessage publishes a message without a message id, lets the router
// deliver it, then publishes an identical one (as Celery does for identical arguments) that
// reaches the router only as a broker redelivery: an earlier consumer took it and went away
// without acknowledging it, as the router's own channel does when its connection drops before
// the append. It is a new message, not a copy of the logged one, and must be delivered.
func TestRedeliveredIdenticalMessage(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	outX := rabbit.Unique("e2e.out")
	out := collect(t, targetQueue(t, outX))
	path := writeConfig(t, dir, allToOut(srcX, srcQ, outX))
	task := amqp.Publishing{ContentType: "application/json", Headers: amqp.Table{"task": "add"}, Body: []byte(`{"args":[2,2]}`)}

	r := startRouter(t, path)
	mustPublish(t, srcX, message{"tasks.add", task})
	out.waitCount(t, "target out, first message", 1, 30*time.Second)
	stopTimed(t, r)

	mustPublish(t, srcX, message{"tasks.add", task})
	takeWithoutAck(t, srcQ)

	r = startRouter(t, path)
	in := map[string]string{"source": "in"}
	var stored, dups float64
	waitFor(t, 30*time.Second, func() bool {
		m := scrape(t, r.Admin)
		stored, _ = metricValue(m, "router_events_stored_total", in)
		dups, _ = metricValue(m, "router_events_duplicate_total", in)
		return stored+dups >= 1
	}, func() string { return "the router never logged nor recognised the redelivered message" })
	if stored != 1 {
		t.Fatalf("the second of two identical messages, redelivered by the broker, was not logged "+
			"(stored %v, recognised as a duplicate %v): it is lost. The fingerprint index matched it against "+
			"the first message, logged and acknowledged long before (store/append.go writeEvents: "+
			"index.lookup on every redelivered message)", stored, dups)
	}
	out.waitCount(t, "target out, both identical messages", 2, 30*time.Second)
}

// takeWithoutAck consumes one message from queue and closes the channel without acknowledging
// it, so that the broker requeues it marked redelivered.
func takeWithoutAck(t *testing.T, queue string) {
	t.Helper()
	withChannel(t, func(ch *amqp.Channel) error {
		got := make(chan amqp.Delivery, 1)
		deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			return err
		}
		go func() {
			if d, ok := <-deliveries; ok {
				got <- d
			}
		}()
		select {
		case d := <-got:
			if d.Redelivered {
				t.Errorf("the message was already marked redelivered")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the second message never reached the source queue")
		}
		return ch.Close() // requeues it, redelivered
	})
}
