package amqpx

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

// TestHeartbeatsKeepAnIdleConnection holds an idle connection with a 1s heartbeat for longer
// than either side's timeout: the broker closes a connection that sent nothing for two
// intervals, the client one that read nothing for three. The patched library sends its
// heartbeats from the time of the last frame written (no longer told of each write) and pushes
// its read deadline back at most every 100ms (not after every frame read).
func TestHeartbeatsKeepAnIdleConnection(t *testing.T) {
	conn, err := amqp.DialConfig(rabbit.URL(), amqp.Config{Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch := rabbit.Channel(t, conn)
	roundTrip := func(when string) {
		t.Helper()
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if _, err := ch.QueueDelete(q.Name, false, false, false); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	// Some traffic first, so the idle time starts after frames were sent and read.
	for range 10 {
		roundTrip("before idling")
	}
	select {
	case err := <-closed:
		t.Fatalf("connection closed while idle: %v", err)
	case <-time.After(4500 * time.Millisecond):
	}
	roundTrip("after idling")
}

// TestReadDeadlineFollowsTraffic keeps a connection with a 1s heartbeat busy for longer than
// its read deadline (three intervals), then holds everything the broker sends: the client must
// have pushed its deadline back during the traffic (not closed), and close the connection
// once nothing arrives for three intervals.
func TestReadDeadlineFollowsTraffic(t *testing.T) {
	p := tcpproxy.Start(t, rabbit.Addr(t))
	conn, err := amqp.DialConfig(rabbit.URLVia(t, p.Addr()), amqp.Config{Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch := rabbit.Channel(t, conn)
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatalf("connection lost during traffic: %v", err)
		}
		if _, err := ch.QueueDelete(q.Name, false, false, false); err != nil {
			t.Fatalf("connection lost during traffic: %v", err)
		}
	}
	p.SetLatency(12 * time.Second) // longer than the wait below; the proxy ends when the test does
	select {
	case <-closed:
	case <-time.After(9 * time.Second):
		t.Fatal("connection still open 9s after the broker went silent (read deadline 3s)")
	}
}
