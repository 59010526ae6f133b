package amqpx

import (
	"context"
	"net/url"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// TargetPublisher publishes one delivery stream's messages to one cluster: the engine's
// publisher port over a confirm-mode Publisher.
type TargetPublisher struct {
	cluster *Cluster
	pub     *Publisher
	user    string // the login on this cluster: user_id is only kept when it equals it
	closed  sync.Once
}

// NewTargetPublisher opens a publisher on c for one stream; user is the cluster's login.
func NewTargetPublisher(c *Cluster, user string) *TargetPublisher {
	c.publishers.Add(1) // a connection a reload replaced closes once this is closed
	return &TargetPublisher{cluster: c, pub: c.NewPublisher(), user: user}
}

// Publish sends m without waiting for the broker's answer; an error is an outage or a refusal
// of headers AMQP cannot carry (see event.Confirmation).
func (p *TargetPublisher) Publish(ctx context.Context, m *event.Message) (event.Confirmation, error) {
	msg := PublishingOf(m)
	// RabbitMQ refuses a user_id other than the connection's own login.
	if msg.UserId != "" && msg.UserId != p.user {
		msg.UserId = ""
	}
	c, err := p.pub.Publish(ctx, m.Exchange, m.RoutingKey, msg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// TakesEncodedHeaders says that Publish sends a message's EncodedHeaders as they are.
func (p *TargetPublisher) TakesEncodedHeaders() bool { return true }

// WaitReady blocks until a publish has a chance to go through: the connection is up and the
// broker does not block publishing.
func (p *TargetPublisher) WaitReady(ctx context.Context) error { return p.cluster.WaitPublishable(ctx) }

// Hold gathers the publishes that follow into few writes, until release (see Publisher.Hold).
func (p *TargetPublisher) Hold() (release func()) { return p.pub.Hold() }

// Cluster names the cluster.
func (p *TargetPublisher) Cluster() string { return p.cluster.Name() }

// Close closes the channel; what the broker has not confirmed resolves as an outage.
func (p *TargetPublisher) Close() error {
	p.closed.Do(func() { p.cluster.publishers.Add(-1) })
	return p.pub.Close()
}

// PublishingOf builds what amqp091-go publishes for m.
func PublishingOf(m *event.Message) amqp.Publishing {
	return amqp.Publishing{
		Headers:         TableFromEvent(m.Headers),
		EncodedHeaders:  m.EncodedHeaders,
		ContentType:     m.Props.ContentType,
		ContentEncoding: m.Props.ContentEncoding,
		DeliveryMode:    m.Props.DeliveryMode,
		Priority:        m.Props.Priority,
		CorrelationId:   m.Props.CorrelationID,
		ReplyTo:         m.Props.ReplyTo,
		Expiration:      m.Props.Expiration,
		MessageId:       m.Props.MessageID,
		Timestamp:       m.Props.Timestamp,
		Type:            m.Props.Type,
		UserId:          m.Props.UserID,
		AppId:           m.Props.AppID,
		Body:            m.Body,
	}
}

// Login is the user name a cluster's URL logs in as ("guest", amqp091-go's default, when the
// URL names none).
func Login(spec config.ClusterSpec) string {
	if u, err := url.Parse(spec.URL); err == nil && u.User != nil {
		return u.User.Username()
	}
	return "guest"
}
