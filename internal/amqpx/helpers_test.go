package amqpx

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fastOptions reconnect quickly, for tests.
func fastOptions(log *slog.Logger) Options {
	return Options{Backoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Logger: log, DialTimeout: 15 * time.Second}
}

// startCluster builds a cluster with a unique name for url and runs it until the test ends.
func startCluster(t testing.TB, url string, opts Options) *Cluster {
	t.Helper()
	c, err := NewCluster(config.ClusterSpec{Name: rabbit.Unique("c"), URL: url}, opts)
	if err != nil {
		t.Fatal(err)
	}
	runCluster(t, c)
	return c
}

// startClusterViaProxy is startCluster (fast options) on the main broker through a proxy
// the test can cut or slow.
func startClusterViaProxy(t testing.TB) (*Cluster, *tcpproxy.Proxy) {
	t.Helper()
	p := tcpproxy.Start(t, rabbit.Addr(t))
	return startCluster(t, rabbit.URLVia(t, p.Addr()), fastOptions(nil)), p
}

// runCluster runs c until the test ends, and waits for Run to return.
func runCluster(t testing.TB, c *Cluster) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitConnected(t testing.TB, c *Cluster, want bool) {
	t.Helper()
	waitFor(t, "the cluster's connection state", 30*time.Second, func() bool { return c.Connected() == want })
}

// waitBothDown waits until each of the cluster's connections has seen a cut that hit both
// (Connected is false as soon as one of them has).
func waitBothDown(t *testing.T, c *Cluster) {
	t.Helper()
	waitFor(t, "both connections down", 30*time.Second, func() bool {
		for _, cs := range c.Status().Connections {
			if cs.Connected {
				return false
			}
		}
		return true
	})
}

// startConsume runs Consume until the test ends and waits for it to return.
func startConsume(t *testing.T, c *Cluster, s config.SourceSpec, handle func(*Delivery), ready func(bool), opts ...ConsumeOption) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Consume(ctx, c, s, handle, ready, opts...) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Consume: %v", err)
		}
	})
}
