package amqpx

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

// TestNoLeaksAcrossReconnects cuts and restores the network hundreds of times under a cluster
// with a consumer and a publisher, and checks that goroutines and heap come back to where they
// were.
func TestNoLeaksAcrossReconnects(t *testing.T) {
	rabbit.SkipIfShort(t)
	const cycles = 200
	before := runtime.NumGoroutine()

	p := tcpproxy.Start(t, rabbit.Addr(t))
	opts := fastOptions(nil)
	opts.Backoff, opts.MaxBackoff = time.Millisecond, 5*time.Millisecond
	c, err := NewCluster(config.ClusterSpec{Name: rabbit.Unique("c"), URL: rabbit.URLVia(t, p.Addr())}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := newSource(t)
	ctx, cancel := context.WithCancel(context.Background())
	clusterDone, consumeDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(clusterDone); c.Run(ctx) }()
	var ready atomic.Bool
	var handled atomic.Int64
	go func() {
		defer close(consumeDone)
		_ = Consume(ctx, c, s, func(d *Delivery) {
			handled.Add(1)
			_ = d.AckThrough()
		}, ready.Store)
	}()
	pub := c.NewPublisher()

	cycle := func() {
		t.Helper()
		waitFor(t, "consuming and publishable", 30*time.Second, func() bool { return ready.Load() && c.Publishable() })
		conf, err := pub.Publish(ctx, s.Exchange, "k", amqp.Publishing{Body: []byte("x")})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		if err := conf.Wait(ctx); err != nil {
			t.Fatalf("confirm: %v", err)
		}
		p.Cut()
		waitFor(t, "disconnected", 30*time.Second, func() bool { return !c.Connected() && !ready.Load() })
		p.Restore()
	}
	settle := func() (int, uint64) {
		t.Helper()
		waitFor(t, "consuming and publishable", 30*time.Second, func() bool { return ready.Load() && c.Publishable() })
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapAlloc
	}

	for range 5 {
		cycle()
	}
	baseGoroutines, baseHeap := settle()
	start := time.Now()
	for range cycles {
		cycle()
	}
	t.Logf("%d cut/restore cycles in %v; %d messages handled", cycles, time.Since(start), handled.Load())

	waitFor(t, "goroutines back to the baseline", 30*time.Second, func() bool {
		n, _ := settle()
		return n <= baseGoroutines
	})
	_, heap := settle()
	t.Logf("heap %d KiB at the baseline, %d KiB after", baseHeap>>10, heap>>10)
	if heap > baseHeap+2<<20 {
		t.Fatalf("heap grew from %d KiB to %d KiB over %d reconnects", baseHeap>>10, heap>>10, cycles)
	}

	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-consumeDone
	<-clusterDone
	p.Close()
	waitFor(t, "goroutines back to the count before the test", 30*time.Second, func() bool {
		return runtime.NumGoroutine() <= before
	})
}
