package multicluster

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// arrival is one message a sink received.
type arrival struct {
	id     string
	order  int64
	at     time.Time
	source string // x-router-source
	route  string // x-router-route
}

// sink collects what a target exchange on one broker receives, through an exclusive queue bound
// with "#" that goes away with the test's connection.
type sink struct {
	name  string
	light bool // count messages only, for long runs that measure the heap

	mu       sync.Mutex
	arrivals []arrival
	seen     map[string]int
	first    map[string]time.Time
	n        int // messages received, duplicates included
}

// newSink declares exchange as the router does (a durable topic exchange, deleted when the test
// ends) and starts consuming everything routed to it.
func newSink(t testing.TB, name, url, exchange string) *sink {
	t.Helper()
	return startSink(t, &sink{name: name}, url, exchange)
}

// newCountingSink is a sink that keeps only how many times each message id arrived.
func newCountingSink(t testing.TB, name, url, exchange string) *sink {
	t.Helper()
	return startSink(t, &sink{name: name, light: true}, url, exchange)
}

func startSink(t testing.TB, s *sink, url, exchange string) *sink {
	t.Helper()
	name := s.name
	ch, err := dial(t, url).Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatalf("sink %s: declare %s: %v", name, exchange, err)
	}
	deleteAtCleanup(t, url, []string{exchange}, nil)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err == nil {
		err = ch.QueueBind(q.Name, "#", exchange, false, nil)
	}
	if err != nil {
		t.Fatalf("sink %s: queue: %v", name, err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatalf("sink %s: consume: %v", name, err)
	}
	s.seen, s.first = map[string]int{}, map[string]time.Time{}
	go func() {
		for d := range deliveries {
			s.add(d)
		}
	}()
	return s
}

func (s *sink) add(d amqp.Delivery) {
	if s.light {
		s.mu.Lock()
		s.seen[d.MessageId]++
		s.n++
		s.mu.Unlock()
		return
	}
	a := arrival{id: d.MessageId, at: time.Now()}
	a.order, _ = d.Headers[orderHeader].(int64)
	a.source, _ = d.Headers["x-router-source"].(string)
	a.route, _ = d.Headers["x-router-route"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arrivals = append(s.arrivals, a)
	s.n++
	if s.seen[a.id]++; s.seen[a.id] == 1 {
		s.first[a.id] = a.at
	}
}

func (s *sink) snapshot() []arrival {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]arrival(nil), s.arrivals...)
}

// times is how many times id arrived.
func (s *sink) times(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[id]
}

// total is how many messages arrived, duplicates included.
func (s *sink) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// firstAt is when id first arrived.
func (s *sink) firstAt(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.first[id]
	return at, ok
}

// missing lists the feeder's messages from..to (inclusive) that have not arrived.
func (s *sink) missing(f *feeder, from, to int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := from; n <= to; n++ {
		if s.seen[f.id(n)] == 0 {
			out = append(out, f.id(n))
		}
	}
	return out
}

// waitAll waits until the feeder's messages from..to have all arrived.
func (s *sink) waitAll(t testing.TB, f *feeder, from, to int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() bool { return len(s.missing(f, from, to)) == 0 }, func() string {
		m := s.missing(f, from, to)
		return fmt.Sprintf("sink %s: %d of messages %d..%d missing, first %s", s.name, len(m), from, to, m[0])
	})
}

// checkOrder verifies that the feeder's messages first arrived in publish order, without a gap:
// every message arrives after all those published before it. Redeliveries (duplicates, which
// at-least-once delivery allows after an outage) may come at any time; it returns their count.
func (s *sink) checkOrder(f *feeder) (dups int, err error) {
	next := int64(1)
	for _, a := range s.snapshot() {
		if !strings.HasPrefix(a.id, f.prefix+"-") {
			continue
		}
		switch {
		case a.order < next:
			dups++
		case a.order == next:
			next++
		default:
			return dups, fmt.Errorf("sink %s: %s arrived while %s was still missing", s.name, a.id, f.id(int(next)))
		}
	}
	return dups, nil
}
