package loop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/bench"
	"github.com/wasmrouter/wasmrouter/bench/loop"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// setup declares a fresh source and target, fills the source with n messages and returns the
// names; everything is deleted when the test ends.
func setup(t *testing.T, n int) (*bench.Broker, bench.Topology) {
	t.Helper()
	rabbit.SkipIfShort(t)
	b, err := bench.Dial(rabbit.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	topo := bench.NewTopology("test.loop")
	if err := b.Declare(topo); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Delete(topo) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Prefill(ctx, topo.SourceExchange, "test", n, 256); err != nil {
		t.Fatal(err)
	}
	return b, topo
}

func TestRunRepublishesEverythingAndAcksAfterConfirm(t *testing.T) {
	const n = 500
	b, topo := setup(t, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		stats loop.Stats
		err   error
	}
	done := make(chan outcome, 1)
	go func() {
		s, err := loop.Run(ctx, loop.Options{URL: rabbit.URL(), Queue: topo.SourceQueue, Exchange: topo.TargetExchange, Prefetch: 100})
		done <- outcome{s, err}
	}()

	waitCtx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	if _, _, err := b.WaitQueue(waitCtx, topo.TargetQueue, 20*time.Millisecond, nil, func(q bench.QueueState) bool { return q.Messages >= n }); err != nil {
		t.Fatal(err)
	}
	cancel()
	var out outcome
	select {
	case out = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if out.err != nil {
		t.Fatalf("Run: %v", out.err)
	}
	if out.stats.Republished != n || out.stats.Nacked != 0 || out.stats.Returned != 0 {
		t.Errorf("stats = %+v, want %d republished and nothing else", out.stats, n)
	}
	for _, q := range []struct {
		name string
		want int
	}{{topo.SourceQueue, 0}, {topo.TargetQueue, n}} {
		st, err := b.Queue(q.name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages != q.want {
			t.Errorf("queue %s holds %d messages, want %d", q.name, st.Messages, q.want)
		}
	}

	conn := rabbit.Dial(t)
	got := rabbit.Collect(t, rabbit.Channel(t, conn), topo.TargetQueue, 3, 10*time.Second)
	if len(got) != 3 {
		t.Fatalf("collected %d messages, want 3", len(got))
	}
	for i, d := range got {
		key, want := bench.Message("test", i, 256)
		checkSame(t, d, key, want)
	}
}

func checkSame(t *testing.T, d amqp.Delivery, key string, want amqp.Publishing) {
	t.Helper()
	if d.RoutingKey != key || d.MessageId != want.MessageId || string(d.Body) != string(want.Body) {
		t.Errorf("message %s: routing key %q, body %.20q..., want %s, %.20q...", d.MessageId, d.RoutingKey, d.Body, key, want.Body)
	}
	if d.DeliveryMode != amqp.Persistent || d.ContentType != want.ContentType || d.AppId != want.AppId {
		t.Errorf("message %s: properties not kept: mode %d, content type %q, app id %q", d.MessageId, d.DeliveryMode, d.ContentType, d.AppId)
	}
	if d.Headers["x-bench-seq"] != want.Headers["x-bench-seq"] || d.Headers["tenant"] != "acme" {
		t.Errorf("message %s: headers %v, want %v", d.MessageId, d.Headers, want.Headers)
	}
}

func TestRunReportsTheBrokerEndingTheConsumer(t *testing.T) {
	b, topo := setup(t, 10)
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := loop.Run(context.Background(), loop.Options{
			URL: rabbit.URL(), Queue: topo.SourceQueue, Exchange: topo.TargetExchange, Ready: func() { close(ready) },
		})
		errc <- err
	}()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("Run ended before consuming: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not start consuming")
	}
	// Deleting the queue makes the broker cancel the consumer.
	if err := b.DeleteTarget(topo.SourceExchange, topo.SourceQueue); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, loop.ErrConsumerClosed) {
			t.Fatalf("Run returned %v, want ErrConsumerClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the broker cancelled its consumer")
	}
}
