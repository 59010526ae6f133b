package rabbit

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestUnique(t *testing.T) {
	a, b := Unique("x"), Unique("x")
	if a == b || !strings.HasPrefix(a, "x.") {
		t.Fatalf("Unique gave %q and %q", a, b)
	}
}

func TestURLVia(t *testing.T) {
	t.Setenv("WASMROUTER_AMQP_URL", "amqp://u:p@broker:5672/vh")
	if got := URLVia(t, "127.0.0.1:9"); got != "amqp://u:p@127.0.0.1:9/vh" {
		t.Fatalf("URLVia = %q", got)
	}
	if got := Addr(t); got != "broker:5672" {
		t.Fatalf("Addr = %q", got)
	}
}

func TestPublishCollectQueueLen(t *testing.T) {
	conn := Dial(t)
	ch := Channel(t, conn)
	ex := Unique("test.ex")
	if err := ch.ExchangeDeclare(ex, "topic", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	DeleteExchangeAtCleanup(t, ex)
	q := DeclareQueueBound(t, ch, ex, "a.*")

	PublishConfirmed(t, ch, ex, "a.b",
		amqp.Publishing{Body: []byte("1")}, amqp.Publishing{Body: []byte("2")}, amqp.Publishing{Body: []byte("3")})
	PublishConfirmed(t, ch, ex, "other", amqp.Publishing{Body: []byte("unrouted")})

	deadline := time.Now().Add(30 * time.Second)
	for QueueLen(t, conn, q) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("queue holds %d messages, want 3", QueueLen(t, conn, q))
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := Collect(t, ch, q, 2, 30*time.Second)
	if len(got) != 2 || string(got[0].Body) != "1" || string(got[1].Body) != "2" {
		t.Fatalf("Collect(2) = %d messages", len(got))
	}
	// The third message went back to the queue; asking for more than there is returns it when
	// the timeout passes (long enough for a loaded broker to hand it over).
	rest := Collect(t, ch, q, 5, 5*time.Second)
	if len(rest) != 1 || string(rest[0].Body) != "3" {
		t.Fatalf("Collect after timeout = %d messages, want the third one", len(rest))
	}
}

// dialNamed opens a connection named name, as a client names it, closed when the test ends; it
// returns the connection's close notification.
func dialNamed(t *testing.T, name string) chan *amqp.Error {
	t.Helper()
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(name)
	conn, err := amqp.DialConfig(URL(), amqp.Config{Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn.NotifyClose(make(chan *amqp.Error, 1))
}

func TestCloseConnections(t *testing.T) {
	SkipIfShort(t)
	name := Unique("test.conn")
	closed := dialNamed(t, name)
	if n := CloseConnections(t, name); n != 1 {
		t.Fatalf("closed %d connections, want 1", n)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.ConnectionForced {
			t.Fatalf("close error %v, want 320 CONNECTION_FORCED", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection still open")
	}
}

func TestAddUser(t *testing.T) {
	SkipIfShort(t)
	name := Unique("test-user")
	url := AddUser(t, name)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("cannot log in as the new user: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare(Unique("test.q"), false, true, true, false, nil)
	if err != nil {
		t.Fatalf("the new user cannot declare a queue: %v", err)
	}
	PublishConfirmed(t, ch, "", q.Name, amqp.Publishing{UserId: name, Body: []byte("x")})
	if got := Collect(t, ch, q.Name, 1, 30*time.Second); len(got) != 1 || got[0].UserId != name {
		t.Fatalf("got %+v", got)
	}
}

func TestCloseNamedConnections(t *testing.T) {
	SkipIfShort(t)
	names := []string{Unique("test-conn-a"), Unique("test-conn-b")}
	var closes []chan *amqp.Error
	for _, name := range names {
		closes = append(closes, dialNamed(t, name))
	}
	got := CloseNamedConnections(t, names...)
	if got[names[0]] != 1 || got[names[1]] != 1 {
		t.Fatalf("closed %v", got)
	}
	for i, c := range closes {
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			t.Fatalf("connection %s still open", names[i])
		}
	}
}
