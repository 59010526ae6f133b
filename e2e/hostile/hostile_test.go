package hostile

import (
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// TestBrokerDeliversLField shows what RabbitMQ does with a header field of type 'L' (py-amqp's
// signed 64-bit integer): a classic queue delivers it as written; the test logs what a quorum
// queue delivers.
func TestBrokerDeliversLField(t *testing.T) {
	ch := rabbit.Channel(t, rabbit.Dial(t))
	addr, user, pass := brokerAddr(t)
	kinds := map[string]byte{}
	for _, qt := range []string{"classic", "quorum"} {
		name := rabbit.Unique("hostile.raw." + qt)
		if _, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": qt}); err != nil {
			t.Fatalf("declare %s queue: %v", qt, err)
		}
		rabbit.DeleteQueueAtCleanup(t, name)
		publishRaw(t, "", name, "raw-"+qt)
		rc, err := dialRaw(addr, user, pass)
		if err != nil {
			t.Fatal(err)
		}
		kind, err := rc.getHeaderKind(name, "big")
		_ = rc.close()
		if err != nil {
			t.Fatalf("%s queue: %v", qt, err)
		}
		kinds[qt] = kind
	}
	if kinds["classic"] != 'L' {
		t.Errorf("a classic queue delivered the header as type %q, want 'L' as published", kinds["classic"])
	}
	if k := kinds["quorum"]; k != 'L' && k != 'l' {
		t.Errorf("a quorum queue delivered the header as type %q, want 'L' or 'l'", k)
	}
	t.Logf("header 'big' published as 'L': a classic queue delivers %q, a quorum queue delivers %q", kinds["classic"], kinds["quorum"])
}

// names is a test's unique cluster, exchange and queue names; the router declares the source
// queues, the test deletes them at the end.
func names(t *testing.T, prefix string) (cluster, exchange, queue string) {
	cluster = strings.ReplaceAll(rabbit.Unique("hostile"), ".", "_")
	exchange, queue = rabbit.Unique(prefix+".in"), rabbit.Unique(prefix+".src")
	rabbit.DeleteExchangeAtCleanup(t, exchange)
	rabbit.DeleteQueueAtCleanup(t, queue)
	return cluster, exchange, queue
}

func persistent(id string) amqp.Publishing {
	return amqp.Publishing{MessageId: id, DeliveryMode: amqp.Persistent, Body: []byte(`{"ok":true}`)}
}

// TestUndecodableDoesNotWedgeClassicSource publishes to a classic source queue two messages
// whose headers the AMQP client cannot decode: an 'L' field as py-amqp writes it, and tables
// nested 40 levels deep. Each is rejected to the queue's dead-letter exchange (the broker's
// copy, with its headers: RabbitMQ re-encodes 'L' as 'l' when it dead-letters) with a count and
// a log line; the message behind them is delivered,
// the connection is never dropped, and another source on the same cluster flows throughout.
func TestUndecodableDoesNotWedgeClassicSource(t *testing.T) {
	ch := rabbit.Channel(t, rabbit.Dial(t))
	cluster, wx, wq := names(t, "hostile.classic")
	_, hx, hq := names(t, "hostile.healthy")
	dlx := rabbit.Unique("hostile.dlx")
	dead := queueSetup(t, ch, dlx)
	ox := rabbit.Unique("hostile.out")
	out := queueSetup(t, ch, ox)
	admin, logs := startRouter(t, fmt.Sprintf(`
cluster %q { url = %q }
source "classic" {
  cluster = %q
  exchange = %q
  queue = %q
  prefetch = 10
  dead_letter_exchange = %q
}
source "healthy" {
  cluster = %q
  exchange = %q
  queue = %q
}
target "out" {
  cluster = %q
  exchange = %q
}
route "c" {
  source = "classic"
  targets = ["out"]
}
route "h" {
  source = "healthy"
  targets = ["out"]
}
`, cluster, rabbit.URL(), cluster, wx, wq, dlx, cluster, hx, hq, cluster, ox))

	rabbit.PublishConfirmed(t, ch, wx, "celery.task", persistent("before"))
	if got := idsIn(t, ch, out, 1, 30*time.Second); !got["before"] {
		t.Fatalf("the message before the poison was not delivered: %v", got)
	}
	reconnects := metric(admin, "router_broker_reconnects_total", map[string]string{"cluster": cluster})
	publishRaw(t, wx, "celery.task", "poison-L")
	publishRawHeaders(t, wx, "celery.task", "poison-nested", []field{nestedField("deep", 40), longstrField("origin", "hostile")})
	rabbit.PublishConfirmed(t, ch, wx, "celery.task", persistent("behind"))
	rabbit.PublishConfirmed(t, ch, hx, "other.event", persistent("healthy"))

	got := map[string]bool{}
	waitFor(t, 60*time.Second, "the messages behind the poison", func() bool {
		for id := range idsIn(t, ch, out, 10, time.Second) {
			got[id] = true
		}
		return got["behind"] && got["healthy"]
	})
	if got["poison-L"] || got["poison-nested"] {
		t.Errorf("a poison message was delivered: %v", got)
	}
	// The dead letters are read by hand: the test's own AMQP client could not decode them either.
	conn := rabbit.Dial(t)
	waitFor(t, 30*time.Second, "both poison messages in the dead-letter exchange", func() bool {
		return rabbit.QueueLen(t, conn, dead) == 2
	})
	addr, user, pass := brokerAddr(t)
	rc, err := dialRaw(addr, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	kind, err := rc.getHeaderKind(dead, "big")
	_ = rc.close()
	if err != nil || (kind != 'L' && kind != 'l') {
		t.Errorf("the dead-lettered message's header big has type %q (%v), want the 64-bit integer as published", kind, err)
	}
	if n := metric(admin, "router_events_rejected_total", map[string]string{"source": "classic", "reason": "undecodable"}); n != 2 {
		t.Errorf("router_events_rejected_total{reason=undecodable} = %v, want 2", n)
	}
	if n := metric(admin, "router_broker_reconnects_total", map[string]string{"cluster": cluster}); n != reconnects {
		t.Errorf("the connection was re-made (%v connections, %v before the poison)", n, reconnects)
	}
	if n := metric(admin, "router_broker_connected", map[string]string{"cluster": cluster}); n != 1 {
		t.Errorf("router_broker_connected = %v", n)
	}
	if log := logs.String(); !strings.Contains(log, "undecodable headers rejected") {
		t.Errorf("no log line says why the messages were rejected:\n%s", logs.Tail(20))
	}
}

// TestQuorumSourceIsNotWedged sends the same message to a quorum source with delivery_limit and
// dead_letter_exchange. Either way the source must go on: the broker dead-letters a message
// the router cannot decode after delivery_limit deliveries, or (RabbitMQ 3.10 quorum queues
// re-encode 'L' as 'l', see TestBrokerDeliversLField) the router decodes and delivers it with
// the header's value intact.
func TestQuorumSourceIsNotWedged(t *testing.T) {
	ch := rabbit.Channel(t, rabbit.Dial(t))
	cluster, qx, qq := names(t, "hostile.quorum")
	dlx := rabbit.Unique("hostile.dlx")
	dead := queueSetup(t, ch, dlx)
	ox := rabbit.Unique("hostile.out")
	out := queueSetup(t, ch, ox)
	admin, _ := startRouter(t, fmt.Sprintf(`
cluster %q { url = %q }
source "quorum" {
  cluster = %q
  exchange = %q
  queue = %q
  queue_type = "quorum"
  delivery_limit = 2
  dead_letter_exchange = %q
}
target "out" {
  cluster = %q
  exchange = %q
}
route "q" {
  source = "quorum"
  targets = ["out"]
}
`, cluster, rabbit.URL(), cluster, qx, qq, dlx, cluster, ox))

	publishRaw(t, qx, "celery.task", "poison")
	rabbit.PublishConfirmed(t, ch, qx, "celery.task", persistent("behind"))
	delivered := map[string]amqp.Delivery{}
	waitFor(t, 60*time.Second, "the message behind the poison", func() bool {
		for _, d := range rabbit.Collect(t, ch, out, 10, time.Second) {
			delivered[d.MessageId] = d
		}
		return delivered["behind"].MessageId != ""
	})
	undecodable := metric(admin, "router_events_rejected_total", map[string]string{"source": "quorum", "reason": "undecodable"})
	if d, ok := delivered["poison"]; ok {
		if v, ok := d.Headers["big"].(int64); !ok || v != 1<<40 {
			t.Errorf("header big delivered as %T %v, want int64 %d", d.Headers["big"], d.Headers["big"], int64(1<<40))
		}
		t.Logf("the quorum queue re-encoded the 'L' header: the router decoded and delivered it (undecodable count %v)", undecodable)
		return
	}
	if got := idsIn(t, ch, dead, 1, 30*time.Second); !got["poison"] {
		t.Fatalf("the poison message is neither delivered nor dead-lettered by the broker")
	}
	t.Logf("the broker dead-lettered the undecodable message after %v decode failures; the source went on", undecodable)
}
