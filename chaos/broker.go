package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/amqpx"
)

// broker is the RabbitMQ the harness and the router share.
type broker struct {
	url string
}

// dial opens a connection carrying name as its client-provided name, so that the connection
// scenario can have the broker close exactly this run's connections. Its reads go through the
// router's frame filter: the dead-letter queue may hold messages (the poison scenario's nested
// headers) that the client would otherwise drop the connection over.
func (b *broker) dial(name string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(name)
	dial := amqp.DefaultDial(5 * time.Second)
	filtered := func(network, addr string) (net.Conn, error) {
		c, err := dial(network, addr)
		if err != nil {
			return nil, err
		}
		return amqpx.FilterConn(c), nil
	}
	return amqp.DialConfig(b.url, amqp.Config{Dial: filtered, Properties: props})
}

// do runs fn on a channel of a short-lived connection of its own: declarations must not depend
// on a connection a scenario may have had the broker close.
func (b *broker) do(fn func(ch *amqp.Channel) error) error {
	conn, err := b.dial("wasmrouter-chaos/admin")
	if err != nil {
		return fmt.Errorf("cannot reach the broker: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	return fn(ch)
}

// declareBound declares exchange (durable topic) and a durable queue bound to it with "#".
// Durable, so that they survive the broker application restarting.
func (b *broker) declareBound(exchange, queue string, args amqp.Table) error {
	return b.do(func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %s: %w", exchange, err)
		}
		if _, err := ch.QueueDeclare(queue, true, false, false, false, args); err != nil {
			return fmt.Errorf("declare queue %s: %w", queue, err)
		}
		return ch.QueueBind(queue, "#", exchange, false, nil)
	})
}

// deleteAll removes exchanges and queues, ignoring those already gone.
func (b *broker) deleteAll(exchanges, queues []string) error {
	var errs []error
	for _, q := range queues {
		if q == "" { // a setup that failed early named fewer objects
			continue
		}
		errs = append(errs, b.do(func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(q, false, false, false)
			return err
		}))
	}
	for _, x := range exchanges {
		if x == "" {
			continue
		}
		errs = append(errs, b.do(func(ch *amqp.Channel) error { return ch.ExchangeDelete(x, false, false) }))
	}
	return errors.Join(errs...)
}

// queueDepths is each queue's ready plus unacknowledged messages, from the broker's own
// listing (a passive declare counts only the ready ones); a queue not listed is absent.
func (b *broker) queueDepths(ctx context.Context) (map[string]int, error) {
	out, err := rabbitmqctl(ctx, "list_queues", "name", "messages", "-q", "--no-table-headers")
	if err != nil {
		return nil, err
	}
	depths := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		name, n, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if v, err := strconv.Atoi(n); ok && err == nil {
			depths[name] = v
		}
	}
	return depths, nil
}

// queueDepth is one queue's depth (see queueDepths).
func (b *broker) queueDepth(ctx context.Context, queue string) (int, error) {
	depths, err := b.queueDepths(ctx)
	if err != nil {
		return 0, err
	}
	n, ok := depths[queue]
	if !ok {
		return 0, fmt.Errorf("queue %s not listed", queue)
	}
	return n, nil
}

// closeNamed has the broker close every connection whose client-provided name is one of
// names, at about the same moment; it returns how many it closed. One `rabbitmqctl eval` does
// it all: each rabbitmqctl call costs seconds of start-up.
func closeNamed(ctx context.Context, names ...string) (int, error) {
	quoted := make([]string, len(names))
	for i, n := range names {
		if !safeName.MatchString(n) {
			return 0, fmt.Errorf("connection name %q: unexpected characters", n)
		}
		quoted[i] = "<<\"" + n + "\">>"
	}
	expr := "Names = [" + strings.Join(quoted, ",") + "], " +
		"length([rabbit_networking:close_connection(P, \"chaos\") || P <- rabbit_networking:connections(), " +
		"{client_properties, Props} <- (try rabbit_networking:connection_info(P, [client_properties]) catch _:_ -> [] end), " +
		"{<<\"connection_name\">>, longstr, N} <- Props, lists:member(N, Names)])."
	out, err := rabbitmqctl(ctx, "eval", expr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return 0, fmt.Errorf("rabbitmqctl eval answered %q", strings.TrimSpace(out))
	}
	return n, nil
}

// safeName is what closeNamed accepts in a connection name: it goes into an Erlang literal.
var safeName = regexp.MustCompile(`^[A-Za-z0-9_./-]+$`)

// rabbitmqctl runs the broker's control tool with a bound on its run time.
func rabbitmqctl(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
