package streamlog

import (
	"encoding/json"
	"net"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbitnode"
)

// killable is a connection to the main broker whose socket the test can close without the
// AMQP close handshake, as when the router's process is killed.
type killable struct {
	*amqp.Connection
	mu  sync.Mutex
	raw net.Conn
}

func dialKillable(t *testing.T) *killable {
	t.Helper()
	rabbit.SkipIfShort(t)
	return dialKillableURL(t, rabbit.URL())
}

func dialKillableNode(t *testing.T, n *rabbitnode.Node) *killable {
	t.Helper()
	return dialKillableURL(t, n.URL())
}

func dialKillableURL(t *testing.T, url string) *killable {
	t.Helper()
	k := &killable{}
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: func(network, addr string) (net.Conn, error) {
		c, err := net.DialTimeout(network, addr, 5*time.Second)
		k.mu.Lock()
		k.raw = c
		k.mu.Unlock()
		return c, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	k.Connection = conn
	t.Cleanup(func() { _ = conn.Close() })
	return k
}

func (k *killable) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	_ = k.raw.Close()
}

func openLease(t *testing.T, conn *amqp.Connection, queue, holder string) *Lease {
	t.Helper()
	l, err := OpenLease(conn, queue, holder)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func waitGranted(t *testing.T, l *Lease, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-l.Granted():
		return time.Since(start)
	case <-l.Lost():
		t.Fatalf("lease lost while waiting for it: %v", l.Err())
	case <-time.After(within):
		t.Fatalf("lease not granted within %s", within)
	}
	return 0
}

// waitPosition waits until the lease's kept token carries next.
func waitPosition(t *testing.T, l *Lease, next uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, ok := l.Position(); ok && got == next {
			return
		}
		if time.Now().After(deadline) {
			got, ok := l.Position()
			t.Fatalf("position %d (set %v), want %d", got, ok, next)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLeaseOneHolderThenTakeover(t *testing.T) {
	a := dialKillable(t)
	b := rabbit.Dial(t)
	queue := rabbit.Unique("streamlog.lease")
	rabbit.DeleteQueueAtCleanup(t, queue)

	la := openLease(t, a.Connection, queue, "router-a")
	waitGranted(t, la, 10*time.Second)
	if next, ok := la.Position(); ok {
		t.Fatalf("a new pair has position %d; want none (start at the end of the log)", next)
	}
	lb := openLease(t, b, queue, "router-b")

	// B consumes now; a token written after that still goes to A, the active consumer.
	if err := la.Advance(5); err != nil {
		t.Fatal(err)
	}
	waitPosition(t, la, 5)
	if err := la.Advance(9); err != nil {
		t.Fatal(err)
	}
	waitPosition(t, la, 9)
	if err := la.Advance(4); err != nil { // behind the kept position: not written
		t.Fatal(err)
	}
	select {
	case <-lb.Granted():
		t.Fatal("both routers hold the pair")
	default:
	}
	if err := lb.Advance(100); err == nil {
		t.Fatal("Advance succeeded on a pair the router does not hold")
	}

	a.kill() // like SIGKILL: the socket goes without a close handshake
	took := waitGranted(t, lb, 10*time.Second)
	t.Logf("takeover after the holder's socket closed: %s", took.Round(time.Millisecond))
	if next, ok := lb.Position(); !ok || next != 9 {
		t.Fatalf("new holder resumes at %d (set %v), want 9", next, ok)
	}
	select {
	case <-la.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the old holder did not notice it lost the pair")
	}
	if err := lb.Advance(12); err != nil {
		t.Fatal(err)
	}
	waitPosition(t, lb, 12)
}

// Tokens left by a holder that died between writing a new token and acknowledging the old one,
// and first tokens written by routers that started together, merge into the furthest one.
func TestLeaseKeepsTheFurthestToken(t *testing.T) {
	conn := rabbit.Dial(t)
	queue := rabbit.Unique("streamlog.lease")
	rabbit.DeleteQueueAtCleanup(t, queue)
	ch := rabbit.Channel(t, conn)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, leaseArgs); err != nil {
		t.Fatal(err)
	}
	var msgs []amqp.Publishing
	for _, p := range []position{{Next: 3, Set: true}, {}, {Next: 7, Set: true}, {Next: 6, Set: true}, {}} {
		body, _ := json.Marshal(p)
		msgs = append(msgs, amqp.Publishing{Body: body})
	}
	rabbit.PublishConfirmed(t, ch, "", queue, msgs...)

	l := openLease(t, conn, queue, "router-a")
	waitGranted(t, l, 10*time.Second)
	waitPosition(t, l, 7)
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		held := len(l.tokens)
		l.mu.Unlock()
		if held == 1 && rabbit.QueueLen(t, conn, queue) == 0 { // all five delivered, one kept
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("holding %d tokens, want 1", held)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The quorum queue requeues the token a moment after the channel closed.
	deadline = time.Now().Add(10 * time.Second)
	for n := rabbit.QueueLen(t, conn, queue); n != 1; n = rabbit.QueueLen(t, conn, queue) {
		if n > 1 || time.Now().After(deadline) {
			t.Fatalf("%d tokens in the queue after the holder left, want 1", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
