package main

import (
	"context"
	"regexp"
	"sort"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/amqpx"

	"github.com/wasmrouter/wasmrouter/internal/testutil/consumeloop"
)

// Router headers the checker reads (docs/headers.md).
const (
	headerRoute = "x-router-route"
	headerError = "x-router-error"
)

// checker consumes every sink queue and the dead-letter queue and keeps, per id, where it
// arrived. It reconnects after a connection loss and acknowledges a message only after
// keeping it, so it loses none (a message may then be kept twice).
type checker struct {
	b        *broker
	connName string
	dlqQueue string
	// verify, when set, checks each delivery to a sink; a non-empty answer is a mismatch.
	verify func(sink string, d *amqp.Delivery) string

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	got         map[string]map[string]int // sink -> id -> deliveries
	dead        map[string]map[string]int // route -> id -> dead letters
	reasons     map[string]int            // normalised reason -> dead letters
	deadReason  map[string]string         // route + "/" + id -> reason
	latency     map[string][]time.Duration
	mismatches  []string
	lastArrival time.Time
}

// watch is one queue the checker consumes; sink is "" for the dead-letter queue.
type watch struct {
	queue, sink string
}

func startChecker(b *broker, connName, dlqQueue string, sinks []watch, verify func(string, *amqp.Delivery) string) *checker {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checker{b: b, connName: connName, dlqQueue: dlqQueue, verify: verify, cancel: cancel,
		got: map[string]map[string]int{}, dead: map[string]map[string]int{}, reasons: map[string]int{},
		deadReason: map[string]string{}, latency: map[string][]time.Duration{}}
	for _, w := range append(sinks, watch{queue: dlqQueue}) {
		if w.sink != "" {
			c.got[w.sink] = map[string]int{}
		}
		c.wg.Go(func() { c.run(ctx, w) })
	}
	return c
}

func (c *checker) run(ctx context.Context, w watch) {
	dial := func() (*amqp.Connection, error) { return c.b.dial(c.connName) }
	opts := consumeloop.Options{Dial: dial, Queue: w.queue, Prefetch: 1000, RetryAfter: 100 * time.Millisecond}
	consumeloop.Run(ctx, opts, func(d *amqp.Delivery) { c.keep(w.sink, d) })
}

func (c *checker) keep(sink string, d *amqp.Delivery) {
	now := time.Now()
	var mismatch string
	if sink != "" && c.verify != nil {
		mismatch = c.verify(sink, d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastArrival = now
	if sink == "" {
		route, _ := d.Headers[headerRoute].(string)
		reason, _ := d.Headers[headerError].(string)
		_, byBroker := d.Headers["x-death"]
		undecodable := amqpx.UndecodableReason(d.Headers) // the filter replaced the headers, x-death included
		if route == "" && (byBroker || undecodable != "") {
			// The source rejected it (the broker's copy, dead-lettered by the source queue):
			// no route took it, so it is dead for every sink.
			reason = "rejected by the source"
			if undecodable != "" {
				reason += ": " + undecodable
			}
			for s := range c.got {
				c.recordDead(s, d.MessageId, reason)
			}
			return
		}
		c.recordDead(route, d.MessageId, reason)
		return
	}
	c.got[sink][d.MessageId]++
	if ns, ok := d.Headers[headerSentAt].(int64); ok && c.got[sink][d.MessageId] == 1 {
		c.latency[sink] = append(c.latency[sink], now.Sub(time.Unix(0, ns)))
	}
	if mismatch != "" {
		c.mismatches = append(c.mismatches, d.MessageId+": "+mismatch)
	}
}

// recordDead counts a dead letter of id for route (a sink's name). Called with c.mu held.
func (c *checker) recordDead(route, id, reason string) {
	if c.dead[route] == nil {
		c.dead[route] = map[string]int{}
	}
	c.dead[route][id]++
	c.deadReason[route+"/"+id] = reason
	if c.dead[route][id] == 1 {
		c.reasons[normaliseReason(reason)]++
	}
}

// stop ends consumption; what is not yet kept stays in its queue.
func (c *checker) stop() {
	c.cancel()
	c.wg.Wait()
}

// quietFor is how long ago the last message arrived.
func (c *checker) quietFor() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Since(c.lastArrival)
}

// where says how often id arrived at sink and how often it was dead-lettered from route sink.
func (c *checker) where(sink, id string) (delivered, dead int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[sink][id], c.dead[sink][id], c.deadReason[sink+"/"+id]
}

// percentiles returns the 50th and 99th percentiles and the maximum of sink's latencies.
func (c *checker) percentiles(sink string) (p50, p99, max time.Duration, n int) {
	c.mu.Lock()
	l := append([]time.Duration(nil), c.latency[sink]...)
	c.mu.Unlock()
	if len(l) == 0 {
		return 0, 0, 0, 0
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	at := func(q float64) time.Duration { return l[min(len(l)-1, int(q*float64(len(l))))] }
	return at(0.50), at(0.99), l[len(l)-1], len(l)
}

var (
	hexRun   = regexp.MustCompile(`[0-9a-f]{12}`)
	numberRe = regexp.MustCompile(`\d+`)
)

// normaliseReason folds what differs between events (names with this run's suffix, numbers)
// so that dead-letter reasons group by cause.
func normaliseReason(s string) string {
	s = hexRun.ReplaceAllString(s, "*")
	s = numberRe.ReplaceAllString(s, "N")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}
