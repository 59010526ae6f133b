// Package rabbit holds helpers for integration tests against a real RabbitMQ broker. The broker
// URL comes from WASMROUTER_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/). Tests that
// use Dial are skipped under -short and fail clearly when the broker cannot be reached.
// Everything a helper declares is deleted when the test ends.
package rabbit

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultURL is the broker used when WASMROUTER_AMQP_URL is not set.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// dialTimeout bounds a test connection's TCP and AMQP handshake. A broker shared with other
// work (and with the routers under test) was seen to take over 5 s to open a connection, so
// it is generous: a broker that is really away still fails the test.
const dialTimeout = 30 * time.Second

// URL is the broker URL for integration tests.
func URL() string {
	if u := os.Getenv("WASMROUTER_AMQP_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Addr is the broker's host:port, for a proxy to forward to.
func Addr(t testing.TB) string {
	t.Helper()
	u, err := amqp.ParseURI(URL())
	if err != nil {
		t.Fatalf("rabbit: WASMROUTER_AMQP_URL does not parse: %v", err)
	}
	return fmt.Sprintf("%s:%d", u.Host, u.Port)
}

// URLVia is the broker URL with its host:port replaced by addr (a proxy in front of the broker).
func URLVia(t testing.TB, addr string) string {
	t.Helper()
	u, err := url.Parse(URL())
	if err != nil {
		t.Fatalf("rabbit: WASMROUTER_AMQP_URL does not parse: %v", err)
	}
	u.Host = addr
	return u.String()
}

// SkipIfShort skips the test under -short: integration tests need a broker.
func SkipIfShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs RabbitMQ (skipped with -short)")
	}
}

// Dial connects to the broker, skipping the test under -short and failing it when the broker is
// unreachable. The connection is closed when the test ends.
func Dial(t testing.TB) *amqp.Connection {
	t.Helper()
	SkipIfShort(t)
	conn, err := amqp.DialConfig(URL(), amqp.Config{Dial: amqp.DefaultDial(dialTimeout)})
	if err != nil {
		t.Fatalf("rabbit: cannot reach the broker for integration tests (set WASMROUTER_AMQP_URL, or run with -short): %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Channel opens a channel on conn, failing the test on error.
func Channel(t testing.TB, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("rabbit: open channel: %v", err)
	}
	return ch
}

// Unique returns prefix followed by a random suffix, for exchange and queue names that no other
// test run uses.
func Unique(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "." + hex.EncodeToString(b)
}

// DeclareQueueBound declares a uniquely named queue, binds it to exchange with key (unless
// exchange is ""), and deletes it when the test ends. It returns the queue's name.
func DeclareQueueBound(t testing.TB, ch *amqp.Channel, exchange, key string) string {
	t.Helper()
	q, err := ch.QueueDeclare(Unique("test.q"), false, false, false, false, nil)
	if err != nil {
		t.Fatalf("rabbit: declare queue: %v", err)
	}
	DeleteQueueAtCleanup(t, q.Name)
	if exchange != "" {
		if err := ch.QueueBind(q.Name, key, exchange, false, nil); err != nil {
			t.Fatalf("rabbit: bind queue %s to %s with %q: %v", q.Name, exchange, key, err)
		}
	}
	return q.Name
}

// DeclareTargetQueueBound is DeclareQueueBound on a router target's exchange, declared first
// the way the router declares its targets (topic, durable). The router declares them when its
// publish connection comes up, which may be after it reports ready (ready means consuming), so
// a test binding to one must not count on it being there yet.
func DeclareTargetQueueBound(t testing.TB, ch *amqp.Channel, exchange, key string) string {
	t.Helper()
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatalf("rabbit: declare exchange %s: %v", exchange, err)
	}
	return DeclareQueueBound(t, ch, exchange, key)
}

// DeleteQueueAtCleanup deletes the queue when the test ends, on a connection of its own (the
// test's may be closed by then).
func DeleteQueueAtCleanup(t testing.TB, name string) {
	t.Helper()
	t.Cleanup(func() {
		withChannel(t, func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(name, false, false, false)
			return err
		})
	})
}

// DeleteExchangeAtCleanup deletes the exchange when the test ends, on a connection of its own.
func DeleteExchangeAtCleanup(t testing.TB, name string) {
	t.Helper()
	t.Cleanup(func() {
		withChannel(t, func(ch *amqp.Channel) error {
			return ch.ExchangeDelete(name, false, false)
		})
	})
}

func withChannel(t testing.TB, fn func(*amqp.Channel) error) {
	conn, err := amqp.DialConfig(URL(), amqp.Config{Dial: amqp.DefaultDial(dialTimeout)})
	if err != nil {
		t.Errorf("rabbit: cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = fn(ch)
	}
	if err != nil {
		t.Errorf("rabbit: cleanup: %v", err)
	}
}

// Collect consumes from queue until it has n messages or timeout passes, and returns what it
// got (acknowledged); the caller checks the count. Messages beyond n go back to the queue.
func Collect(t testing.TB, ch *amqp.Channel, queue string, n int, timeout time.Duration) []amqp.Delivery {
	t.Helper()
	tag := Unique("collect")
	deliveries, err := ch.Consume(queue, tag, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("rabbit: consume %s: %v", queue, err)
	}
	defer func() {
		if ch.Cancel(tag, false) == nil {
			for d := range deliveries {
				_ = d.Nack(false, true)
			}
		}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var got []amqp.Delivery
	for len(got) < n {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return got
			}
			if err := d.Ack(false); err != nil {
				t.Fatalf("rabbit: ack: %v", err)
			}
			got = append(got, d)
		case <-timer.C:
			return got
		}
	}
	return got
}

// PublishConfirmed publishes each message and waits for the broker to confirm it (10s each),
// failing the test on a nack or a timeout. It puts ch in confirm mode.
func PublishConfirmed(t testing.TB, ch *amqp.Channel, exchange, key string, msgs ...amqp.Publishing) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("rabbit: confirm mode: %v", err)
	}
	for i, m := range msgs {
		dc, err := ch.PublishWithDeferredConfirm(exchange, key, false, false, m)
		if err != nil {
			t.Fatalf("rabbit: publish %d: %v", i, err)
		}
		select {
		case <-dc.Done():
			if !dc.Acked() {
				t.Fatalf("rabbit: publish %d to %q: nacked", i, exchange)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("rabbit: publish %d to %q: no confirm within 10s", i, exchange)
		}
	}
}

// QueueLen is the number of ready messages in queue. It uses a channel of its own, since a
// missing queue closes the channel.
func QueueLen(t testing.TB, conn *amqp.Connection, queue string) int {
	t.Helper()
	return inspect(t, conn, queue).Messages
}

// inspect declares the queue passively, which reports its messages and consumers.
func inspect(t testing.TB, conn *amqp.Connection, queue string) amqp.Queue {
	t.Helper()
	ch := Channel(t, conn)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("rabbit: queue %s: %v", queue, err)
	}
	return q
}

// QueueConsumers is the number of consumers the broker has on a queue.
func QueueConsumers(t testing.TB, conn *amqp.Connection, queue string) int {
	t.Helper()
	return inspect(t, conn, queue).Consumers
}

// CloseConnections has the broker close every connection whose client-provided name is name
// (as amqp.Table.SetClientConnectionName sets it), the way an operator would; it returns how
// many it closed. Prefer it to CloseAllConnections when other tests share the broker.
func CloseConnections(t testing.TB, name string) int {
	t.Helper()
	out := rabbitmqctl(t, "list_connections", "pid", "client_properties", "-q", "--no-table-headers")
	want := fmt.Sprintf(`{"connection_name",%q}`, name)
	closed := 0
	for _, line := range strings.Split(out, "\n") {
		pid, props, ok := strings.Cut(line, "\t")
		if ok && strings.Contains(props, want) {
			rabbitmqctl(t, "close_connection", pid, "test")
			closed++
		}
	}
	return closed
}

// CloseNamedConnections has the broker close, at about the same moment, every connection whose
// client-provided name is one of names. It returns how many it closed, by name.
func CloseNamedConnections(t testing.TB, names ...string) map[string]int {
	t.Helper()
	out := rabbitmqctl(t, "list_connections", "pid", "client_properties", "-q", "--no-table-headers")
	closed := map[string]int{}
	var pids []string
	for _, line := range strings.Split(out, "\n") {
		pid, props, ok := strings.Cut(line, "\t")
		for _, name := range names {
			if ok && strings.Contains(props, fmt.Sprintf(`{"connection_name",%q}`, name)) {
				pids = append(pids, pid)
				closed[name]++
			}
		}
	}
	errs := make([]error, len(pids))
	var wg sync.WaitGroup
	for i, pid := range pids {
		wg.Go(func() {
			if b, err := exec.Command("rabbitmqctl", "close_connection", pid, "test").CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("rabbitmqctl close_connection %s: %w\n%s", pid, err, b)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("rabbit: %v", err)
	}
	return closed
}

// CloseAllConnections runs `rabbitmqctl close_all_connections test`. It closes the connections
// of every client of the broker, other tests running at the same time included.
func CloseAllConnections(t testing.TB) {
	t.Helper()
	rabbitmqctl(t, "close_all_connections", "test")
}

func rabbitmqctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbit: rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
