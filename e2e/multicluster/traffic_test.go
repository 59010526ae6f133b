package multicluster

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// orderHeader numbers a feeder's messages from 1, in publish order.
const orderHeader = "x-order"

// dial connects to a broker; the connection is closed when the test ends.
func dial(t testing.TB, url string) *amqp.Connection {
	t.Helper()
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(30 * time.Second)})
	if err != nil {
		t.Fatalf("connecting to %s: %v", redact(url), err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func redact(url string) string { return strings.Replace(url, "guest:guest@", "guest:xxxxx@", 1) }

// deleteAtCleanup deletes exchanges and queues on the broker at url when the test ends (after
// the router, if it was started later), on a connection of its own.
func deleteAtCleanup(t testing.TB, url string, exchanges, queues []string) {
	t.Helper()
	t.Cleanup(func() {
		conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(30 * time.Second)})
		if err != nil {
			t.Errorf("cleanup on %s: %v", redact(url), err)
			return
		}
		defer conn.Close()
		for _, q := range queues {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(q, false, false, false)
				_ = ch.Close()
			}
		}
		for _, x := range exchanges {
			if ch, err := conn.Channel(); err == nil {
				_ = ch.ExchangeDelete(x, false, false)
				_ = ch.Close()
			}
		}
	})
}

// feeder publishes numbered messages to a source exchange: message id PREFIX-N and header
// x-order = N, from 1, each confirmed by the broker. It records when each was published.
type feeder struct {
	t        testing.TB
	ch       *amqp.Channel
	exchange string
	key      string // routing key, default "ev.test"
	prefix   string

	mu   sync.Mutex
	sent []time.Time // sent[N-1]: when message N was published (it was confirmed)
	err  error

	stop, done chan struct{}
}

func newFeeder(t testing.TB, url, exchange, prefix string) *feeder {
	t.Helper()
	ch, err := dial(t, url).Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		t.Fatalf("feeder channel: %v", err)
	}
	f := &feeder{t: t, ch: ch, exchange: exchange, key: "ev.test", prefix: prefix}
	t.Cleanup(func() {
		if err := f.stopLoop(); err != nil {
			t.Errorf("feeder: %v", err)
		}
	})
	return f
}

func (f *feeder) id(n int) string { return f.prefix + "-" + strconv.Itoa(n) }

// publish sends n messages now, pipelined (up to 256 unconfirmed), and waits for every confirm.
func (f *feeder) publish(n int) {
	f.t.Helper()
	type pending struct {
		dc *amqp.DeferredConfirmation
		at time.Time
	}
	var window []pending
	settle := func(p pending) {
		select {
		case <-p.dc.Done():
		case <-time.After(30 * time.Second):
			f.t.Fatalf("feeder: no confirm within 30s")
		}
		if !p.dc.Acked() {
			f.t.Fatalf("feeder: publish nacked")
		}
		f.mu.Lock()
		f.sent = append(f.sent, p.at)
		f.mu.Unlock()
	}
	next := f.count() + 1
	for i := range n {
		at := time.Now()
		dc, err := f.ch.PublishWithDeferredConfirm(f.exchange, f.key, false, false, f.message(next+i))
		if err != nil {
			f.t.Fatalf("feeder: publish: %v", err)
		}
		window = append(window, pending{dc, at})
		if len(window) == 256 {
			settle(window[0])
			window = window[1:]
		}
	}
	for _, p := range window {
		settle(p)
	}
}

func (f *feeder) message(n int) amqp.Publishing {
	return amqp.Publishing{
		MessageId: f.id(n),
		Headers:   amqp.Table{orderHeader: int64(n)},
		Body:      []byte(fmt.Sprintf(`{"n":%d}`, n)),
	}
}

// run publishes perSecond messages a second, one confirmed at a time, until pause.
func (f *feeder) run(perSecond int) {
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(f.done)
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-tick.C:
			}
			if err := f.sendOne(); err != nil {
				f.mu.Lock()
				f.err = err
				f.mu.Unlock()
				return
			}
		}
	}()
}

func (f *feeder) sendOne() error {
	n := f.count() + 1
	at := time.Now()
	dc, err := f.ch.PublishWithDeferredConfirm(f.exchange, f.key, false, false, f.message(n))
	if err != nil {
		return err
	}
	select {
	case <-dc.Done():
	case <-time.After(30 * time.Second):
		return fmt.Errorf("no confirm for message %d within 30s", n)
	}
	if !dc.Acked() {
		return fmt.Errorf("message %d nacked", n)
	}
	f.mu.Lock()
	f.sent = append(f.sent, at)
	f.mu.Unlock()
	return nil
}

// pause stops run's loop and returns how many messages were sent in all; it fails the test if
// a publish failed. Idempotent.
func (f *feeder) pause() int {
	f.t.Helper()
	if err := f.stopLoop(); err != nil {
		f.t.Fatalf("feeder: %v", err)
	}
	return f.count()
}

func (f *feeder) stopLoop() error {
	if f.stop != nil {
		close(f.stop)
		<-f.done
		f.stop = nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *feeder) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

// sentAt is when message n was published.
func (f *feeder) sentAt(n int) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent[n-1]
}

// waitSent waits until the feeder has sent n messages in all.
func (f *feeder) waitSent(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() bool { return f.count() >= n }, func() string {
		return fmt.Sprintf("feeder sent %d messages, want %d", f.count(), n)
	})
}
