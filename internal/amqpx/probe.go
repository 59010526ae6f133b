package amqpx

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/config"
)

// ProbeSpec is what `router validate --connect` checks on one cluster.
type ProbeSpec struct {
	Cluster   config.ClusterSpec
	Queues    []string // the sources' queues
	Exchanges []string // the sources' and targets' exchanges
}

// Probe connects to the cluster (address, TLS, credentials, virtual host) and checks each
// queue and exchange with a passive declare, which creates nothing: one that exists must be
// accessible; one that does not is fine (run declares it), unless the broker refuses access.
// Errors name the cause without the password.
func Probe(ctx context.Context, p ProbeSpec) error {
	timeout := 15 * time.Second
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
	}
	d, err := newDialer(p.Cluster, Options{DialTimeout: timeout})
	if err != nil {
		return err
	}
	conn, _, err := d.dial(ctx, "validate")
	if err != nil {
		return fmt.Errorf("cannot connect to %s: %w", config.RedactURL(p.Cluster.URL), explainDialError(err))
	}
	defer conn.Close()
	check := func(kind, name string, declare func(*amqp.Channel) error) error {
		if name == "" {
			return nil
		}
		ch, err := conn.Channel()
		if err != nil {
			return fmt.Errorf("opening a channel: %w", err)
		}
		err = declare(ch)
		var ae *amqp.Error
		switch {
		case err == nil:
			_ = ch.Close()
			return nil
		case errors.As(err, &ae) && ae.Code == amqp.NotFound:
			return nil // run declares it
		case errors.As(err, &ae) && ae.Code == amqp.AccessRefused:
			return fmt.Errorf("%s %q: access refused; the user needs configure, write and read permissions on it: %s", kind, name, ae.Reason)
		default:
			return fmt.Errorf("%s %q: %w", kind, name, err)
		}
	}
	for _, q := range p.Queues {
		if err := check("queue", q, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
			return err
		}); err != nil {
			return err
		}
	}
	for _, x := range p.Exchanges {
		if err := check("exchange", x, func(ch *amqp.Channel) error {
			return ch.ExchangeDeclarePassive(x, amqp.ExchangeTopic, true, false, false, false, nil)
		}); err != nil {
			return err
		}
	}
	return nil
}

// explainDialError adds what a user should check to the library's terse refusals.
func explainDialError(err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.AccessRefused {
		return fmt.Errorf("%w (check the user name and password in the url, and the user's access to the virtual host)", err)
	}
	if errors.Is(err, amqp.ErrCredentials) {
		return fmt.Errorf("%w (check the user name and password in the url)", err)
	}
	if errors.Is(err, amqp.ErrVhost) {
		return fmt.Errorf("%w (check the virtual host in the url and the user's permissions on it)", err)
	}
	return err
}
