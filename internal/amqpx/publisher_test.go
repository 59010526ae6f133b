package amqpx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// declareTarget declares a target exchange (deleted at cleanup) and a queue bound to it with
// "ok.#", and returns both names.
func declareTarget(t testing.TB, ch *amqp.Channel) (exchange, queue string) {
	t.Helper()
	exchange = rabbit.Unique("test.pub")
	rabbit.DeleteExchangeAtCleanup(t, exchange)
	if err := DeclareExchange(ch, exchange); err != nil {
		t.Fatal(err)
	}
	return exchange, rabbit.DeclareQueueBound(t, ch, exchange, "ok.#")
}

// newTargetPublisher connects a cluster and returns a test connection, a target exchange with
// its queue (see declareTarget) and a publisher on the cluster, closed at cleanup.
func newTargetPublisher(t testing.TB) (conn *amqp.Connection, exchange, queue string, pub *Publisher) {
	t.Helper()
	conn = rabbit.Dial(t)
	c := startCluster(t, rabbit.URL(), fastOptions(nil))
	exchange, queue = declareTarget(t, rabbit.Channel(t, conn))
	waitConnected(t, c, true)
	pub = c.NewPublisher()
	t.Cleanup(func() { pub.Close() })
	return conn, exchange, queue, pub
}

func waitAll(t *testing.T, confs []*Confirm) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make([]error, len(confs))
	for i, c := range confs {
		select {
		case <-c.Done():
			errs[i] = c.Err()
		case <-ctx.Done():
			t.Fatalf("confirm %d of %d not resolved", i, len(confs))
		}
	}
	return errs
}

func TestPublisherPipelinedAcks(t *testing.T) {
	conn, ex, q, pub := newTargetPublisher(t)

	const n = 5000
	ctx := context.Background()
	start := time.Now()
	confs := make([]*Confirm, n)
	for i := range confs {
		conf, err := pub.Publish(ctx, ex, "ok.x", amqp.Publishing{MessageId: fmt.Sprint(i), Body: []byte("payload")})
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		confs[i] = conf
	}
	for i, err := range waitAll(t, confs) {
		if err != nil {
			t.Fatalf("confirm %d: %v", i, err)
		}
	}
	t.Logf("%d pipelined publishes confirmed in %v", n, time.Since(start))
	// Without returns or nacks the waiter settles every acked publish itself: the watcher,
	// a second goroutine hand-off per confirm, resolves none.
	pub.mu.Lock()
	pc := pub.cur
	pub.mu.Unlock()
	if got := pc.byWatcher.Load(); got != 0 {
		t.Fatalf("the watcher resolved %d of %d acked publishes, want 0", got, n)
	}
	if pc.counts == nil || pc.counts.seen.Load() != 0 {
		t.Fatalf("return counts %v, want counted and none seen", pc.counts)
	}
	waitFor(t, "all messages in the queue", 30*time.Second, func() bool { return rabbit.QueueLen(t, conn, q) == n })
}

// TestPublisherWaitsForReturnsInFlight: while a return read from the connection is not yet
// matched to its publish (here: counted as read, never applied), an acked publish is not
// settled by its waiter but by the watcher, which reads returns in order; once the counts
// agree again, waiters settle their own.
func TestPublisherWaitsForReturnsInFlight(t *testing.T) {
	_, ex, _, pub := newTargetPublisher(t)
	ctx := context.Background()
	first, err := pub.Publish(ctx, ex, "ok.first", amqp.Publishing{Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if errs := waitAll(t, []*Confirm{first}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	pub.mu.Lock()
	pc := pub.cur
	pub.mu.Unlock()
	pc.counts.seen.Add(1) // a return on its way
	const n = 50
	confs := make([]*Confirm, n)
	publishConfirmed := func() {
		t.Helper()
		for i := range confs {
			if confs[i], err = pub.Publish(ctx, ex, "ok.x", amqp.Publishing{Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		for i, err := range waitAll(t, confs) {
			if err != nil {
				t.Fatalf("confirm %d: %v", i, err)
			}
		}
	}
	publishConfirmed()
	if got := pc.byWatcher.Load(); got == 0 {
		t.Fatal("acked publishes settled by their waiters while a return was in flight")
	}
	pc.counts.applied.Add(1) // it arrived
	before := pc.byWatcher.Load()
	publishConfirmed()
	if got := pc.byWatcher.Load() - before; got != 0 {
		t.Fatalf("the watcher resolved %d publishes with no return in flight, want 0", got)
	}
}

func TestPublisherMatchesReturnsInPipeline(t *testing.T) {
	conn, ex, q, pub := newTargetPublisher(t)

	// Without message ids and with equal bodies, only the routing key tells them apart.
	const n = 2000
	confs := make([]*Confirm, n)
	for i := range confs {
		key := fmt.Sprintf("ok.%d", i)
		if i%3 == 1 {
			key = fmt.Sprintf("nowhere.%d", i)
		}
		conf, err := pub.Publish(context.Background(), ex, key, amqp.Publishing{Body: []byte("same")})
		if err != nil {
			t.Fatal(err)
		}
		confs[i] = conf
	}
	routed := 0
	for i, err := range waitAll(t, confs) {
		var refused *RefusedError
		if i%3 == 1 {
			if !errors.As(err, &refused) || !strings.HasPrefix(refused.Reason, "NO_ROUTE 312") || !strings.Contains(refused.Reason, fmt.Sprintf("nowhere.%d", i)) {
				t.Fatalf("confirm %d: %v, want a NO_ROUTE refusal", i, err)
			}
			if IsOutage(err) {
				t.Fatalf("a refusal counted as an outage: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("confirm %d: %v", i, err)
		}
		routed++
	}
	pub.mu.Lock()
	counts := pub.cur.counts
	pub.mu.Unlock()
	if seen, applied := counts.seen.Load(), counts.applied.Load(); seen != n-uint64(routed) || applied != seen {
		t.Fatalf("returns seen %d, applied %d, want %d", seen, applied, n-routed)
	}
	waitFor(t, "routed messages in the queue", 30*time.Second, func() bool { return rabbit.QueueLen(t, conn, q) == routed })
}

func TestPublisherNack(t *testing.T) {
	conn := rabbit.Dial(t)
	ch := rabbit.Channel(t, conn)
	c := startCluster(t, rabbit.URL(), fastOptions(nil))
	ex, _ := declareTarget(t, ch)
	// A full queue that rejects publishes makes the broker nack them.
	full := rabbit.Unique("test.full")
	if _, err := ch.QueueDeclare(full, false, false, false, false, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	rabbit.DeleteQueueAtCleanup(t, full)
	if err := ch.QueueBind(full, "full.#", ex, false, nil); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, c, true)
	pub := c.NewPublisher()
	defer pub.Close()

	var confs []*Confirm
	for i := range 3 {
		conf, err := pub.Publish(context.Background(), ex, "full.x", amqp.Publishing{MessageId: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		confs = append(confs, conf)
	}
	errs := waitAll(t, confs)
	if errs[0] != nil {
		t.Fatalf("first publish: %v", errs[0])
	}
	for _, err := range errs[1:] {
		var refused *RefusedError
		if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "basic.nack") {
			t.Fatalf("publish to a full queue: %v, want a nack refusal", err)
		}
	}
}

func TestPublisherMissingExchange(t *testing.T) {
	conn, ex, q, pub := newTargetPublisher(t)
	ctx := context.Background()

	conf, err := pub.Publish(ctx, rabbit.Unique("test.missing"), "k", amqp.Publishing{Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	var refused *RefusedError
	if err := conf.Wait(ctx); !errors.As(err, &refused) || !strings.Contains(refused.Reason, "404") || !strings.Contains(refused.Reason, "NOT_FOUND") {
		t.Fatalf("publish to a missing exchange: %v", err)
	}
	// The channel exception does not outlive the message that caused it.
	for i := range 2 {
		conf, err = pub.Publish(ctx, ex, "ok.after", amqp.Publishing{Body: []byte("y")})
		if err != nil {
			t.Fatalf("publish %d after the exception: %v", i, err)
		}
		if err := conf.Wait(ctx); err != nil {
			t.Fatalf("publish %d after the exception: %v", i, err)
		}
	}
	waitFor(t, "messages in the queue", 30*time.Second, func() bool { return rabbit.QueueLen(t, conn, q) == 2 })
	if !pub.c.Connected() {
		t.Fatal("a channel exception dropped the connection")
	}
}

func TestPublisherOutage(t *testing.T) {
	conn := rabbit.Dial(t)
	ex, q := declareTarget(t, rabbit.Channel(t, conn))
	c, p := startClusterViaProxy(t)
	waitConnected(t, c, true)
	pub := c.NewPublisher()
	defer pub.Close()
	ctx := context.Background()

	// Open the channel first, then slow the proxy so the confirms are still pending when the
	// network is cut.
	if conf, err := pub.Publish(ctx, ex, "ok.x", amqp.Publishing{}); err != nil || conf.Wait(ctx) != nil {
		t.Fatalf("first publish: %v", err)
	}
	p.SetLatency(time.Second)
	var confs []*Confirm
	for i := range 50 {
		conf, err := pub.Publish(ctx, ex, "ok.x", amqp.Publishing{MessageId: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		confs = append(confs, conf)
	}
	p.Cut()
	for i, err := range waitAll(t, confs) {
		var refused *RefusedError
		if !IsOutage(err) || !errors.Is(err, ErrConnectionLost) || errors.As(err, &refused) {
			t.Fatalf("confirm %d after a cut: %v, want an outage", i, err)
		}
	}
	waitBothDown(t, c)
	if _, err := pub.Publish(ctx, ex, "ok.x", amqp.Publishing{}); !errors.Is(err, ErrNotConnected) || !IsOutage(err) {
		t.Fatalf("publish while down: %v", err)
	}

	p.SetLatency(0)
	p.Restore()
	waitConnected(t, c, true)
	conf, err := pub.Publish(ctx, ex, "ok.back", amqp.Publishing{Body: []byte("back")})
	if err != nil {
		t.Fatal(err)
	}
	if err := conf.Wait(ctx); err != nil {
		t.Fatalf("publish after reconnect: %v", err)
	}
	// Every publish was confirmed, so all are in the queue: take them all, however slowly the
	// broker hands them over.
	n := rabbit.QueueLen(t, conn, q)
	got := rabbit.Collect(t, rabbit.Channel(t, conn), q, n, 30*time.Second)
	if len(got) == 0 || string(got[len(got)-1].Body) != "back" {
		t.Fatalf("queue holds %d messages, the last one not the one published after the reconnect", len(got))
	}
}

func TestChannelCloseClassification(t *testing.T) {
	live := rabbit.Dial(t)
	closed := rabbit.Dial(t)
	_ = closed.Close()
	for _, tc := range []struct {
		name    string
		conn    *amqp.Connection
		err     *amqp.Error
		refused bool
	}{
		{"exchange not found", live, &amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND - no exchange", Server: true, Recover: true}, true},
		{"message too large", live, &amqp.Error{Code: amqp.PreconditionFailed, Reason: "PRECONDITION_FAILED - message size", Server: true, Recover: true}, true},
		{"operator closed the connection", live, &amqp.Error{Code: amqp.ConnectionForced, Reason: "CONNECTION_FORCED - test", Server: true}, false},
		{"network", live, &amqp.Error{Code: amqp.FrameError, Reason: "EOF"}, false},
		{"soft code on a closing connection", closed, &amqp.Error{Code: amqp.AccessRefused, Reason: "ACCESS_REFUSED", Server: true, Recover: true}, false},
		{"graceful", live, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := &pubChannel{conn: tc.conn}
			pc.noteCloseLocked(tc.err, tc.err != nil)
			var refused *RefusedError
			if errors.As(pc.closeErr, &refused) != tc.refused || IsOutage(pc.closeErr) == tc.refused {
				t.Fatalf("close %v classified as %v", tc.err, pc.closeErr)
			}
		})
	}
}

func TestPublisherCloseAndBlocked(t *testing.T) {
	conn := rabbit.Dial(t)
	ex, _ := declareTarget(t, rabbit.Channel(t, conn))
	c, p := startClusterViaProxy(t)
	waitConnected(t, c, true)
	ctx := context.Background()
	pub := c.NewPublisher()

	if _, err := pub.Publish(ctx, ex, "ok.x", amqp.Publishing{Headers: amqp.Table{"big": uint64(1)}}); err == nil {
		t.Fatal("published a header type AMQP cannot carry")
	} else if _, ok := errors.AsType[*RefusedError](err); !ok {
		t.Fatalf("invalid header: %v, want a refusal", err)
	}

	c.setBlocked(c.publish, amqp.Blocking{Active: true, Reason: "low on memory"})
	if _, err := pub.Publish(ctx, ex, "ok.x", amqp.Publishing{}); !errors.Is(err, ErrNotConnected) || !strings.Contains(err.Error(), "low on memory") {
		t.Fatalf("publish while blocked: %v", err)
	}
	c.setBlocked(c.publish, amqp.Blocking{Active: false})
	if conf, err := pub.Publish(ctx, ex, "ok.x", amqp.Publishing{}); err != nil || conf.Wait(ctx) != nil {
		t.Fatalf("publish after unblock: %v", err)
	}

	p.SetLatency(300 * time.Millisecond)
	var confs []*Confirm
	for range 20 {
		conf, err := pub.Publish(ctx, ex, "ok.x", amqp.Publishing{})
		if err != nil {
			t.Fatal(err)
		}
		confs = append(confs, conf)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	for i, err := range waitAll(t, confs) {
		if err != nil && !errors.Is(err, ErrConnectionLost) {
			t.Fatalf("confirm %d after Close: %v", i, err)
		}
	}
	if _, err := pub.Publish(ctx, ex, "ok.x", amqp.Publishing{}); !errors.Is(err, ErrPublisherClosed) {
		t.Fatalf("publish after Close: %v", err)
	}
	if err := pub.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
