package router

import (
	"context"
	"errors"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/amqpx"
)

// confirmation is a publish waiting for the broker's answer.
type confirmation interface {
	Done() <-chan struct{}
	// Err, after Done: nil when the broker took the message; a refusal (*amqpx.RefusedError);
	// or an outage (the connection went away first), see isOutage.
	Err() error
}

// publisher sends one stream's messages to one target, pipelined.
type publisher interface {
	// Publish sends msg without waiting for the confirm. An error here is an outage.
	Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (confirmation, error)
	// WaitReady blocks until a publish has a chance to go through (a connection is up and the
	// broker does not block publishing).
	WaitReady(ctx context.Context) error
	// Hold gathers the publishes that follow into few writes, until release; see
	// amqpx.Publisher.Hold.
	Hold() (release func())
	// Cluster names where the messages go now (for logs and status).
	Cluster() string
	Close() error
}

// isOutage tells a target that cannot be reached (wait, never dead-letter) from a broker that
// refused a message (retry, then dead-letter).
func isOutage(err error) bool {
	var refused *amqpx.RefusedError
	return err != nil && !errors.As(err, &refused)
}

// clusterPublisher publishes to one cluster.
type clusterPublisher struct {
	cluster *amqpx.Cluster
	pub     *amqpx.Publisher
	user    string // the login on this cluster: user_id is only kept when it equals it
}

var _ publisher = (*clusterPublisher)(nil)

func newClusterPublisher(c *amqpx.Cluster, user string) *clusterPublisher {
	return &clusterPublisher{cluster: c, pub: c.NewPublisher(), user: user}
}

func (p *clusterPublisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (confirmation, error) {
	// RabbitMQ refuses a user_id other than the connection's own login.
	if msg.UserId != "" && msg.UserId != p.user {
		msg.UserId = ""
	}
	c, err := p.pub.Publish(ctx, exchange, key, msg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (p *clusterPublisher) WaitReady(ctx context.Context) error {
	return p.cluster.WaitPublishable(ctx)
}

func (p *clusterPublisher) Hold() func()    { return p.pub.Hold() }
func (p *clusterPublisher) Cluster() string { return p.cluster.Name() }
func (p *clusterPublisher) Close() error    { return p.pub.Close() }
