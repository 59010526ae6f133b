package rabbitnode

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// TestClusterReplicatesAStream forms a three-node cluster, writes a stream replicated on all
// three through the first node, stops that node and reads every message back from another,
// then restarts the stopped node and sees it rejoin.
func TestClusterReplicatesAStream(t *testing.T) {
	start := time.Now()
	c := StartCluster(t, 3)
	t.Logf("cluster of %d formed in %s", len(c.Nodes), time.Since(start).Round(100*time.Millisecond))
	for _, n := range c.Nodes {
		if n.Addr() == rabbit.Addr(t) {
			t.Fatalf("node %s listens on the main broker's address %s", n.Name(), n.Addr())
		}
	}

	stream := rabbit.Unique("rabbitnode.stream")
	const count = 200
	first := dial(t, c.Nodes[0])
	ch := rabbit.Channel(t, first)
	if _, err := ch.QueueDeclare(stream, true, false, false, false,
		amqp.Table{"x-queue-type": "stream", "x-initial-cluster-size": int32(3)}); err != nil {
		t.Fatal(err)
	}
	msgs := make([]amqp.Publishing, count)
	for i := range msgs {
		msgs[i] = amqp.Publishing{Body: []byte(fmt.Sprint(i))}
	}
	rabbit.PublishConfirmed(t, ch, "", stream, msgs...)
	waitReplicas(t, c.Nodes[1], stream, 3)
	_ = first.Close()

	if err := c.Nodes[0].Stop(); err != nil {
		t.Fatal(err)
	}
	got := readStream(t, c.Nodes[1], stream, count)
	for i, m := range got {
		if string(m.Body) != fmt.Sprint(i) {
			t.Fatalf("message %d from %s is %q, want %q", i, c.Nodes[1].Name(), m.Body, fmt.Sprint(i))
		}
	}

	if err := c.Nodes[0].Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.awaitMembers(); err != nil {
		t.Fatal(err)
	}
	out, err := c.Nodes[2].Ctl("cluster_status", "--formatter", "json")
	if err != nil {
		t.Fatal(err)
	}
	running := out[strings.Index(out, `"running_nodes"`):]
	if !strings.Contains(running, c.Nodes[0].Name()) {
		t.Fatalf("%s does not run again after Restart:\n%s", c.Nodes[0].Name(), out)
	}
}

func dial(t *testing.T, n *Node) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// waitReplicas waits until the stream's member list, as node n reports it, has want members.
func waitReplicas(t *testing.T, n *Node, stream string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := n.Ctl("list_queues", "name", "members", "-q", "--formatter", "json")
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.Index(out, stream); i >= 0 && strings.Count(firstObject(out[i:]), "@localhost") == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s has not %d members after 30s:\n%s", stream, want, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func firstObject(s string) string {
	if i := strings.Index(s, "}"); i >= 0 {
		return s[:i]
	}
	return s
}

// readStream reads the first want messages of a stream through node n.
func readStream(t *testing.T, n *Node, stream string, want int) []amqp.Delivery {
	t.Helper()
	conn := dial(t, n)
	// Right after a node stops, the stream's replica on n may not be serving yet: the broker
	// refuses the consumer ("does not have a replica on the local node", which closes the
	// channel) until it does. Ask again on a new channel, within a bound.
	var deliveries <-chan amqp.Delivery
	deadline := time.Now().Add(30 * time.Second)
	for {
		ch := rabbit.Channel(t, conn)
		err := ch.Qos(100, 0, false)
		if err == nil {
			deliveries, err = ch.Consume(stream, "", false, false, false, false, amqp.Table{"x-stream-offset": "first"})
		}
		if err == nil {
			break
		}
		var amqpErr *amqp.Error
		if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.PreconditionFailed || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // the broker starts the replica on its own time
	}
	var got []amqp.Delivery
	timeout := time.After(30 * time.Second)
	for len(got) < want {
		select {
		case d, ok := <-deliveries:
			if !ok {
				t.Fatalf("consumer closed after %d of %d messages", len(got), want)
			}
			got = append(got, d)
			_ = d.Ack(false)
		case <-timeout:
			t.Fatalf("read %d of %d messages from %s in 30s", len(got), want, n.Name())
		}
	}
	return got
}
