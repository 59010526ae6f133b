// Command demo shows the example router.hcl at work: it binds a queue to every target exchange
// of the configuration, publishes a few sample events to the first source's exchange, and
// prints what each target received. Then it changes the running router without stopping it:
// it lowers the high_value filter's threshold in the configuration file, asks the router for
// a dry run of the reload (with what the change would have done to the last hour of the log),
// applies it, publishes the samples again to show the new generation at work, and puts the
// file back as it was, with a last reload. Run the router first (`make run`), then `make demo`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/config"
)

type sample struct {
	key     string
	headers amqp.Table
	body    string
}

var samples = []sample{
	{"order.created", amqp.Table{"tenant": "acme"}, `{"id":"o-1","amount":250,"customer":{"email":"ann@example.com","phone":"555-0100"},"items":[{"sku":"A1","qty":1},{"sku":"B2","qty":3}]}`},
	{"order.created", amqp.Table{"tenant": "acme"}, `{"id":"o-2","amount":20,"customer":{"email":"bob@example.com"},"items":[{"sku":"C3","qty":1}]}`},
	{"payment.captured", amqp.Table{"region": "eu", "attempt": int32(1)}, `{"order":"o-1","amount":250}`},
	{"payment.captured", amqp.Table{"region": "us", "attempt": int32(1)}, `{"order":"o-2","amount":20}`},
	{"order.updated", nil, `{"id":"o-3","amount":"lots"}`},
	{"user.signed_up", nil, `{"user":"u-9"}`},
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	path := flag.String("c", "router.hcl", "router configuration `FILE`")
	wait := flag.Duration("wait", 3*time.Second, "how long to collect deliveries")
	reload := flag.Bool("reload", true, "then change the running router's configuration (and put it back)")
	flag.Parse()
	cfg, diags := config.Load(*path, nil)
	if diags.HasErrors() {
		config.FormatDiagnostics(os.Stderr, diags)
		return errors.New("invalid configuration")
	}
	if len(cfg.Sources) == 0 || len(cfg.Clusters) == 0 {
		return errors.New("the configuration has no source")
	}
	conn, err := amqp.Dial(cfg.Clusters[0].URL)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", config.RedactURL(cfg.Clusters[0].URL), err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	queues := map[string]string{}
	for _, t := range cfg.Targets {
		if err := ch.ExchangeDeclare(t.Exchange, "topic", true, false, false, false, nil); err != nil {
			return err
		}
		// Durable and kept after the demo exits: with nowhere to go, the router's mandatory
		// publishes would be refused and every event dead-lettered.
		q, err := ch.QueueDeclare("demo."+t.Name, true, false, false, false, nil)
		if err != nil {
			return err
		}
		if err := ch.QueueBind(q.Name, "#", t.Exchange, false, nil); err != nil {
			return err
		}
		queues[t.Name] = q.Name
	}
	src := cfg.Sources[0]
	if err := ch.Confirm(false); err != nil {
		return err
	}
	if err := publishSamples(ch, src.Exchange); err != nil {
		return err
	}
	if err := showTargets(ch, cfg, queues, *wait); err != nil {
		return err
	}
	if !*reload {
		return nil
	}
	return reloadDemo(ch, cfg, *path, queues, *wait)
}

func publishSamples(ch *amqp.Channel, exchange string) error {
	for _, s := range samples {
		c, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), exchange, s.key, false, false, amqp.Publishing{
			Headers: s.headers, ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: []byte(s.body),
		})
		if err != nil {
			return err
		}
		if !c.Wait() {
			return fmt.Errorf("broker refused the sample %s", s.key)
		}
		fmt.Printf("published  %-18s %s\n", s.key, s.body)
	}
	return nil
}

// showTargets prints what each target's queue received within wait.
func showTargets(ch *amqp.Channel, cfg *config.Config, queues map[string]string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for _, t := range cfg.Targets {
		fmt.Printf("\ntarget %q (exchange %q):\n", t.Name, t.Exchange)
		for {
			d, ok, err := ch.Get(queues[t.Name], true)
			if err != nil {
				return err
			}
			if !ok {
				if time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				break
			}
			fmt.Printf("  %-22s route=%v %s\n", d.RoutingKey, d.Headers["x-router-route"], d.Body)
			if reason, ok := d.Headers["x-router-error"]; ok {
				fmt.Printf("  %22s error: %v\n", "", reason)
			}
		}
	}
	return nil
}
