package streamlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbitnode"
	"github.com/wasmrouter/wasmrouter/store"
)

// On a three-node cluster, two routers append side by side while the node that leads the
// stream and the lease queue stops and comes back: the appends on their way to the stopped
// leader fail, the logs connect to the next one and append on, every append the broker
// confirmed is in the log, and the pair's token, with its position, survives and moves when
// its holder dies.
func TestClusterNodeStopLosesNothing(t *testing.T) {
	c := rabbitnode.StartCluster(t, 3)
	stream, queue := "streamlog.cluster.log", "streamlog.cluster.pair"

	// Declared through the first node, the stream and the lease queue are led from there
	// (the default leader locator is the client's node).
	first := dialNode(t, c.Nodes[0])
	ch, err := first.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(stream, true, false, false, false, StreamArgs(Options{ClusterSize: 3})); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, leaseArgs); err != nil {
		t.Fatal(err)
	}
	_ = first.Close()

	connB, connC := dialKillableNode(t, c.Nodes[1]), dialNode(t, c.Nodes[2])
	logB, logC := openClusterLog(t, connB.Connection, c.Nodes[1], stream), openClusterLog(t, connC, c.Nodes[2], stream)
	holder := openLease(t, connB.Connection, queue, "router-b")
	waitGranted(t, holder, 30*time.Second)
	waiting := openLease(t, connC, queue, "router-c")
	if err := holder.Advance(1); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	confirmed := map[string]bool{} // routing keys the broker confirmed
	failed := 0
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for name, l := range map[string]*Log{"b": logB, "c": logC} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; {
				key := fmt.Sprintf("%s.%d", name, i)
				done := make(chan error, 1)
				ev := &event.Event{Source: "in", RoutingKey: key, Body: []byte(key)}
				l.Append(ev, store.FingerprintOf(ev), store.Window{}, func(_ uint64, _ bool, err error) { done <- err })
				var err error
				select {
				case err = <-done:
				case <-time.After(30 * time.Second):
					err = errors.New("no confirm within 30s")
				}
				mu.Lock()
				if err == nil {
					confirmed[key] = true
				} else {
					failed++
				}
				mu.Unlock()
				if err != nil {
					// The source would not acknowledge and would deliver the message again:
					// the stream's leader stopped and the log connects to the next one.
					time.Sleep(10 * time.Millisecond) // a source's redelivery is not instant either
					continue
				}
				i++
			}
		}()
	}
	waitConfirmed := func(n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			mu.Lock()
			got := len(confirmed)
			mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d appends confirmed, want %d", got, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitConfirmed(200)
	if err := c.Nodes[0].Stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	before := len(confirmed)
	mu.Unlock()
	waitConfirmed(before + 200) // appends go on with the stream led from another node
	if err := c.Nodes[0].Restart(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	before = len(confirmed)
	mu.Unlock()
	waitConfirmed(before + 200)
	stop()
	wg.Wait()
	t.Logf("%d appends confirmed, %d failed across the node's stop and restart", len(confirmed), failed)

	seen := map[string]bool{}
	readCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errAllFound := errors.New("all found")
	var readErr error
	for {
		readErr = logC.Read(readCtx, 1, func(ev *event.Event) error {
			seen[ev.RoutingKey] = true
			for key := range confirmed {
				if !seen[key] {
					return nil
				}
			}
			return errAllFound
		})
		if !errors.Is(readErr, errStreamLost) || readCtx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling: the log is connecting again after the restart
	}
	lost := 0
	for key := range confirmed {
		if !seen[key] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d confirmed appends are not in the log (the read ended with %v)", lost, len(confirmed), readErr)
	}

	// The holder dies; the token, replicated, goes to the other router with its position.
	select {
	case <-waiting.Granted():
		t.Fatal("both routers hold the pair")
	default:
	}
	connB.kill()
	waitGranted(t, waiting, 30*time.Second)
	if next, ok := waiting.Position(); !ok || next != 1 {
		t.Fatalf("the new holder resumes at %d (set %v), want 1", next, ok)
	}
}

func openClusterLog(t *testing.T, conn *amqp.Connection, node *rabbitnode.Node, stream string) *Log {
	t.Helper()
	l, err := Open(conn, Options{Native: nodeNative(t, node), Stream: stream, ClusterSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func dialNode(t *testing.T, n *rabbitnode.Node) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
