package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/consumeloop"
)

// collector consumes a queue in the background and keeps every delivery. It reconnects when
// the broker closes its connection and acknowledges a message only after keeping it, so it
// loses none (a message may then be kept twice: the broker redelivers what was unacknowledged).
type collector struct {
	queue  string
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	msgs []amqp.Delivery
	ids  map[string]int
}

// collect starts consuming queue; the collector stops when the test ends, before the queue
// is deleted if the queue was declared first.
func collect(t testing.TB, queue string) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{queue: queue, cancel: cancel, done: make(chan struct{}), ids: map[string]int{}}
	go c.run(ctx)
	t.Cleanup(c.stop)
	return c
}

func (c *collector) run(ctx context.Context) {
	defer close(c.done)
	opts := consumeloop.Options{Dial: dial, Queue: c.queue, Prefetch: 500, RetryAfter: 50 * time.Millisecond}
	consumeloop.Run(ctx, opts, c.keep)
}

func (c *collector) keep(d *amqp.Delivery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, *d)
	c.ids[d.MessageId]++
}

// stop ends consumption; what is not yet kept stays in the queue. Idempotent.
func (c *collector) stop() {
	c.cancel()
	<-c.done
}

// forget drops what the collector kept, once a test has read it: a benchmark that collects
// round after round would otherwise carry every earlier round's deliveries in its heap.
func (c *collector) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs, c.ids = nil, map[string]int{}
}

// messages returns the deliveries kept so far, in arrival order.
func (c *collector) messages() []amqp.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// count is the number of deliveries kept, duplicates included.
func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// distinct is the number of distinct message ids kept.
func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

// missing lists the ids in want not kept yet.
func (c *collector) missing(want []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range want {
		if c.ids[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// duplicates maps each id kept more than once to its count.
func (c *collector) duplicates() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for id, n := range c.ids {
		if n > 1 {
			out[id] = n
		}
	}
	return out
}

// waitIDs waits until every id in want was kept, failing the test after timeout.
func (c *collector) waitIDs(t testing.TB, what string, want []string, timeout time.Duration) {
	t.Helper()
	// Kept ids stay kept: each poll goes on from the first id still missing, rather than
	// looking every id up again under the lock the consumer needs (with a hundred thousand
	// ids, that scan every 10 ms took more CPU than the router it waits for).
	next := 0
	arrived := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for next < len(want) && c.ids[want[next]] > 0 {
			next++
		}
		return next == len(want)
	}
	waitFor(t, timeout, arrived, func() string {
		miss := c.missing(want)
		return fmt.Sprintf("%s (queue %s): %d of %d messages never arrived, e.g. %s",
			what, c.queue, len(miss), len(want), sample(miss))
	})
}

// waitCount waits until at least n deliveries were kept.
func (c *collector) waitCount(t testing.TB, what string, n int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() bool { return c.count() >= n }, func() string {
		return fmt.Sprintf("%s (queue %s): %d messages arrived, want %d", what, c.queue, c.count(), n)
	})
}

// waitFor polls cond every 10ms until it holds, failing the test with explain() after timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, explain func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, explain())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sample shows a few entries of a long list.
func sample(list []string) string {
	list = slices.Clone(list)
	sort.Strings(list)
	if len(list) > 5 {
		return strings.Join(list[:5], ", ") + ", ..."
	}
	return strings.Join(list, ", ")
}
