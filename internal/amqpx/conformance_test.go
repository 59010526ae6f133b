package amqpx

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
	"github.com/wasmrouter/wasmrouter/router/routertest"
)

// The RabbitMQ source passes the conformance suite of the engine's Source port, against the
// real broker.
func TestSourceConformance(t *testing.T) {
	rabbit.SkipIfShort(t)
	conn := rabbit.Dial(t)
	routertest.RunSourceSuite(t, func(t *testing.T) routertest.SourceHarness {
		spec := newSource(t)
		ch := rabbit.Channel(t, conn)
		if err := DeclareSource(ch, spec); err != nil {
			t.Fatal(err)
		}
		c := startCluster(t, rabbit.URL(), fastOptions(nil))
		return routertest.SourceHarness{
			Source: &Source{cluster: c, spec: spec},
			Publish: func(t *testing.T, key string, body []byte) {
				rabbit.PublishConfirmed(t, ch, spec.Exchange, key, amqp.Publishing{Body: body})
			},
			// amqp091-go writes a table nested deeper than it reads back (32 levels).
			PublishUndecodable: func(t *testing.T, key string) {
				deep := amqp.Table{"leaf": int32(1)}
				for range 40 {
					deep = amqp.Table{"n": deep}
				}
				rabbit.PublishConfirmed(t, ch, spec.Exchange, key, amqp.Publishing{Headers: amqp.Table{"deep": deep}})
			},
		}
	})
}

// The RabbitMQ target publisher passes the conformance suite of the engine's Publisher port,
// against the real broker (cut through a proxy for the outage), and so does a failover
// publisher over two clusters (both cut for the outage).
func TestPublisherConformance(t *testing.T) {
	rabbit.SkipIfShort(t)
	t.Run("one cluster", func(t *testing.T) {
		runPublisherSuite(t, 1, func(clusters []*Cluster) StreamPublisher {
			return NewTargetPublisher(clusters[0], "guest")
		})
	})
	t.Run("failover over two clusters", func(t *testing.T) {
		runPublisherSuite(t, 2, func(clusters []*Cluster) StreamPublisher {
			pubs := []*TargetPublisher{NewTargetPublisher(clusters[0], "guest"), NewTargetPublisher(clusters[1], "guest")}
			return NewFailoverPublisher("t", pubs, nil, nil)
		})
	})
}

// runPublisherSuite runs the suite on what open builds over n clusters, each reached through a
// proxy of its own.
func runPublisherSuite(t *testing.T, n int, open func(clusters []*Cluster) StreamPublisher) {
	conn := rabbit.Dial(t)
	routertest.RunPublisherSuite(t, func(t *testing.T) routertest.PublisherHarness {
		var proxies []*tcpproxy.Proxy
		var clusters []*Cluster
		for range n {
			c, p := startClusterViaProxy(t)
			proxies = append(proxies, p)
			clusters = append(clusters, c)
		}
		// Every cluster up before the first publish: a failover publisher whose first cluster
		// connects mid-burst moves to it, and two clusters are two connections with no order
		// between them (here they reach the same broker, so one queue would see the mix).
		for _, c := range clusters {
			waitFor(t, "the cluster publishable", 30*time.Second, c.Publishable)
		}
		ch := rabbit.Channel(t, conn)
		exchange := rabbit.Unique("test.target")
		if err := DeclareExchange(ch, exchange); err != nil {
			t.Fatal(err)
		}
		rabbit.DeleteExchangeAtCleanup(t, exchange)
		queue := rabbit.DeclareQueueBound(t, ch, exchange, "#")
		pub := open(clusters)
		t.Cleanup(func() { _ = pub.Close() })
		return routertest.PublisherHarness{
			Publisher: pub,
			Exchange:  exchange,
			Received: func(t *testing.T, n int) []event.Message {
				var out []event.Message
				for _, d := range rabbit.Collect(t, ch, queue, n, 20*time.Second) {
					// As the broker delivered it: a consumer's x-router-* headers are the router's.
					ev := EventFromDelivery(&d, "")
					out = append(out, event.Message{Exchange: d.Exchange, RoutingKey: d.RoutingKey, Props: ev.Props, Headers: TableToEvent(d.Headers), Body: ev.Body})
				}
				return out
			},
			Missing: rabbit.Unique("test.missing"),
			Cut: func(t *testing.T, up bool) {
				for i, p := range proxies {
					if up {
						p.Restore()
						continue
					}
					p.Cut()
					waitConnected(t, clusters[i], false)
				}
			},
		}
	})
}
