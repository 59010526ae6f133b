package amqpx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// recordingConn records each Write it gets.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	fail   error
	closed bool
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recordingConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *recordingConn) got() (writes []string, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.writes {
		writes = append(writes, string(w))
	}
	return writes, c.closed
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

func TestBatchConnWritesThroughUnlessHeld(t *testing.T) {
	rc := &recordingConn{}
	bc := newBatchConn(rc)
	write(t, bc, "a")
	write(t, bc, "b")
	bc.hold()
	write(t, bc, "c")
	write(t, bc, "d")
	if w, _ := rc.got(); len(w) != 2 {
		t.Fatalf("held writes reached the connection: %q", w)
	}
	bc.release()
	write(t, bc, "e")
	w, _ := rc.got()
	if fmt.Sprint(w) != "[a b cd e]" {
		t.Fatalf("writes = %q, want [a b cd e]", w)
	}
}

func TestBatchConnEveryReleaseFlushes(t *testing.T) {
	rc := &recordingConn{}
	bc := newBatchConn(rc)
	bc.hold()
	bc.hold()
	write(t, bc, "a")
	bc.release() // one holder left: the buffered bytes go anyway, no burst waits for another
	write(t, bc, "b")
	write(t, bc, "c")
	bc.release()
	if w, _ := rc.got(); fmt.Sprint(w) != "[a bc]" {
		t.Fatalf("writes = %q, want [a bc]", w)
	}
}

func TestBatchConnFlushesAtTheLimit(t *testing.T) {
	rc := &recordingConn{}
	bc := newBatchConn(rc)
	bc.hold()
	chunk := string(bytes.Repeat([]byte("x"), batchLimit/2))
	write(t, bc, chunk)
	write(t, bc, chunk)
	write(t, bc, "y") // over the limit: what waits goes first, in order, then this
	w, _ := rc.got()
	if len(w) != 2 || w[0] != chunk+chunk || w[1] != "y" {
		t.Fatalf("got %d writes, want the full buffer then the overflowing write", len(w))
	}
	bc.release()
	if w, _ := rc.got(); len(w) != 2 {
		t.Fatalf("an empty release wrote: %d writes", len(w))
	}
}

func TestBatchConnBypassKeepsOrder(t *testing.T) {
	rc := &recordingConn{}
	bc := newBatchConn(rc)
	bc.hold()
	write(t, bc, "a")
	bc.bypass() // a request whose answer the holder awaits: what waits goes first
	write(t, bc, "open")
	bc.endBypass()
	write(t, bc, "b")
	bc.release()
	if w, _ := rc.got(); fmt.Sprint(w) != "[a open b]" {
		t.Fatalf("writes = %q, want [a open b]", w)
	}
}

func TestBatchConnFailedFlushClosesAndSticks(t *testing.T) {
	rc := &recordingConn{}
	bc := newBatchConn(rc)
	bc.hold()
	write(t, bc, "lost")
	boom := errors.New("connection reset")
	rc.mu.Lock()
	rc.fail = boom
	rc.mu.Unlock()
	bc.release()
	if _, closed := rc.got(); !closed {
		t.Fatal("a failed flush left the connection open: the library would never learn that the buffered bytes were lost")
	}
	if _, err := bc.Write([]byte("next")); !errors.Is(err, boom) {
		t.Fatalf("write after a failed flush: %v, want %v", err, boom)
	}
}

// A burst under Hold on a publisher with no channel yet: the channel must open (its request
// bypasses the hold) and every message must be confirmed.
func TestPublisherHoldOpensChannelAndConfirmsBurst(t *testing.T) {
	rabbit.SkipIfShort(t)
	conn, ex, q, pub := newTargetPublisher(t)

	const bursts, perBurst = 20, 100
	var confs []*Confirm
	published := make(chan error, 1)
	go func() {
		for b := range bursts {
			release := pub.Hold()
			for i := range perBurst {
				conf, err := pub.Publish(context.Background(), ex, "ok.x", amqp.Publishing{
					MessageId: fmt.Sprint(b*perBurst + i), Body: bytes.Repeat([]byte("p"), 1024),
				})
				if err != nil {
					release()
					published <- fmt.Errorf("publish %d of burst %d: %w", i, b, err)
					return
				}
				confs = append(confs, conf)
			}
			release()
		}
		published <- nil
	}()
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("publishing under Hold hung: the channel's opening waited in the buffer")
	}
	for i, err := range waitAll(t, confs) {
		if err != nil {
			t.Fatalf("confirm %d: %v", i, err)
		}
	}
	waitFor(t, "every message in the queue", 30*time.Second, func() bool { return rabbit.QueueLen(t, conn, q) == bursts*perBurst })
	// Order is kept: the queue holds the messages as published.
	ch := rabbit.Channel(t, conn)
	for i := range bursts * perBurst {
		d, ok, err := ch.Get(q, true)
		if err != nil || !ok {
			t.Fatalf("get %d: ok=%v err=%v", i, ok, err)
		}
		if d.MessageId != fmt.Sprint(i) {
			t.Fatalf("message %d has id %s: the burst was reordered", i, d.MessageId)
		}
	}
}

// Cluster.Hold holds the writes of the connection it is given (here the single connection of
// a cluster with Options.Only): publishes wait in its buffer until release, then go out and
// are confirmed. A connection that is not the cluster's holds nothing.
func TestClusterHoldBuffersItsConnection(t *testing.T) {
	rabbit.SkipIfShort(t)
	opts := fastOptions(nil)
	opts.Only = "log"
	c := startCluster(t, rabbit.URL(), opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := c.Connection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q := rabbit.Unique("amqpx.hold")
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	// Exclusive: it goes with the connection. An auto-delete queue no consumer ever took
	// would stay behind, with its ten messages.
	if _, err := ch.QueueDeclare(q, false, true, true, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 100))
	buffered := func() int {
		b := c.currentBatch()
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.buf)
	}

	release := c.Hold(conn)
	for i := range 10 {
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if buffered() == 0 {
		t.Fatal("publishes under Hold were written at once")
	}
	release()
	if n := buffered(); n != 0 {
		t.Fatalf("%d bytes still buffered after release", n)
	}
	for i := range 10 {
		select {
		case conf := <-confirms:
			if !conf.Ack {
				t.Fatalf("publish %d refused", i)
			}
		case <-ctx.Done():
			t.Fatalf("%d of 10 publishes confirmed", i)
		}
	}

	other := rabbit.Dial(t)
	c.Hold(other)() // not the cluster's: nothing to hold or release
}
