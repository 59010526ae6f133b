package amqpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/backoff"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// Delivery is one consumed message: the event.Delivery a source hands on, acknowledged on the
// channel it came from.
type Delivery struct {
	event.Delivery
	Tag uint64
	ch  *amqp.Channel
}

// deliveryWithEvent puts a delivery and its event in one allocation instead of two. The
// event outlives the delivery (the log's ring of recent events holds it), keeping its 40 or so
// bytes alive with it.
type deliveryWithEvent struct {
	Delivery
	ev event.Event
}

func newDelivery(d *amqp.Delivery, source string, ch *amqp.Channel) *Delivery {
	x := &deliveryWithEvent{Delivery: Delivery{Tag: d.DeliveryTag, ch: ch}}
	out := &x.Delivery
	// Read before the headers become the event's (which loses the x-router-* ones).
	out.Undecodable = UndecodableReason(d.Headers)
	takeDelivery(&x.ev, d, source)
	out.Event, out.Redelivered, out.Ack = &x.ev, d.Redelivered, out
	return out
}

// AckThrough acknowledges this delivery and every earlier one on the same channel
// (multiple=true). On a channel that has closed since, it is a no-op: the broker redelivers
// those messages.
func (d *Delivery) AckThrough() error {
	if d.ch == nil {
		return nil
	}
	return ignoreClosed(d.ch, d.ch.Ack(d.Tag, true))
}

// Reject rejects this delivery alone; with requeue the broker delivers it again, without it
// the broker drops or dead-letters it. A no-op on a channel that has closed since.
func (d *Delivery) Reject(requeue bool) error {
	if d.ch == nil {
		return nil
	}
	return ignoreClosed(d.ch, d.ch.Reject(d.Tag, requeue))
}

func ignoreClosed(ch *amqp.Channel, err error) error {
	if err == nil || errors.Is(err, amqp.ErrClosed) || ch.IsClosed() {
		return nil
	}
	return err
}

// ConsumeOption configures Consume.
type ConsumeOption func(*consumeOptions)

type consumeOptions struct {
	pauser   *Pauser
	onDecode func(error)
}

// WithPauser lets p pause the consumer (see Pauser).
func WithPauser(p *Pauser) ConsumeOption {
	return func(o *consumeOptions) { o.pauser = p }
}

// WithDecodeErrorHook calls fn each time this source's connection is closed because the client
// could not decode a frame from the broker (see IsDecodeError), to count it. When several
// sources share the cluster's connection, each of them sees the close.
func WithDecodeErrorHook(fn func(error)) ConsumeOption {
	return func(o *consumeOptions) { o.onDecode = fn }
}

var errPaused = errors.New("consumption paused")

var consumerSeq atomic.Uint64

// Consume consumes the source until ctx ends. On every (re)connect it opens a channel,
// declares the source, sets the prefetch and consumes with manual acknowledgements, calling
// handle for each delivery, in order, from one goroutine. When the channel or connection drops
// it logs, waits for the cluster and resumes. ready reports whether it is consuming (nil is
// allowed). It returns nil when ctx ends, or an error at once for a spec that cannot work.
//
// When ctx ends, Consume cancels its consumer, requeues the deliveries it had received but not
// handed out, and leaves the channel open so that those handed out can still be acknowledged;
// the channel closes with the connection.
func Consume(ctx context.Context, c *Cluster, s config.SourceSpec, handle func(*Delivery), ready func(bool), opts ...ConsumeOption) error {
	if err := checkSource(s); err != nil {
		return err
	}
	var o consumeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if ready == nil {
		ready = func(bool) {}
	}
	log := c.log.With("source", s.Name, "queue", s.Queue)
	failures := 0
	for {
		if !o.pauser.wait(ctx, log) {
			return nil
		}
		conn, err := c.Connection(ctx)
		if err != nil {
			return nil
		}
		start := time.Now()
		err = consumeOnce(ctx, c, conn, s, handle, ready, o.pauser, log)
		ready(false)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, errPaused):
			failures = 0
			continue
		case IsDecodeError(err):
			// The one line said about it: the hook only counts.
			log.Error("a message on this queue cannot be decoded: the client cannot decode a message from this queue "+
				"(an AMQP header field type amqp091-go does not support, such as 'L' written by py-amqp); "+
				"the connection was dropped and the broker will redeliver it",
				"err", err, "hint", undecodableHint(s))
			if o.onDecode != nil {
				o.onDecode(err)
			}
		default:
			log.Warn("consuming stopped", "err", err)
		}
		if time.Since(start) >= c.opts.MaxBackoff {
			failures = 0
		} else {
			failures++
		}
		if !backoff.Sleep(ctx, c.backoff(failures)) {
			return nil
		}
	}
}

// undecodableHint says how to get a message that cannot be decoded out of the way.
func undecodableHint(s config.SourceSpec) string {
	if s.QueueType == amqp.QueueTypeQuorum && s.DeliveryLimit > 0 {
		return "the broker dead-letters it after delivery_limit attempts"
	}
	return "set queue_type = \"quorum\" with delivery_limit and dead_letter_exchange so the broker moves such messages aside"
}

func consumeOnce(ctx context.Context, c *Cluster, conn *amqp.Connection, s config.SourceSpec, handle func(*Delivery),
	ready func(bool), pauser *Pauser, log *slog.Logger) error {
	// Take the change signal before reading the state, so that a Pause during the set-up
	// below is seen by the loop.
	paused := pauser.changed()
	if is, _ := pauser.Paused(); is {
		return errPaused
	}
	ch, err := c.OpenChannel(conn)
	if err != nil {
		return fmt.Errorf("opening a channel: %w", err)
	}
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	n, _ := prefetch(s)
	tag := consumerTag(s.Name)
	var deliveries <-chan amqp.Delivery
	if err = DeclareSource(ch, s); err == nil {
		if err = ch.Qos(n, 0, false); err == nil {
			deliveries, err = ch.Consume(s.Queue, tag, false, false, false, false, nil)
		}
	}
	if err != nil {
		_ = ch.Close()
		return err
	}
	ready(true)
	log.Info("consuming", "prefetch", n)
	for {
		select {
		case <-ctx.Done():
			stopConsuming(ch, tag, deliveries)
			return ctx.Err()
		case <-paused:
			if is, _ := pauser.Paused(); is {
				// Closing the channel returns every unacknowledged message to the queue.
				_ = ch.Close()
				return errPaused
			}
			paused = pauser.changed()
		case d, ok := <-deliveries:
			if !ok {
				return closeReason(ch, closes)
			}
			handle(newDelivery(&d, s.Name, ch))
		}
	}
}

// stopConsuming cancels the consumer and requeues what arrived but was not handed out; the
// library's buffer goroutine lives until its deliveries are read.
func stopConsuming(ch *amqp.Channel, tag string, deliveries <-chan amqp.Delivery) {
	if err := ch.Cancel(tag, false); err != nil {
		_ = ch.Close()
	}
	for d := range deliveries {
		_ = ch.Reject(d.DeliveryTag, true)
	}
}

// closeReason explains why the delivery stream ended: the channel's close error, or a consumer
// the broker cancelled (its queue was deleted, for one).
func closeReason(ch *amqp.Channel, closes <-chan *amqp.Error) error {
	if !ch.IsClosed() {
		_ = ch.Close()
		return errors.New("the broker cancelled the consumer (was the queue deleted?)")
	}
	// The library notifies the close before it ends the delivery stream.
	select {
	case e, ok := <-closes:
		if ok && e != nil {
			return e
		}
	default:
	}
	return errors.New("channel closed")
}

func consumerTag(source string) string {
	tag := fmt.Sprintf("wasmrouter.%d.%s", consumerSeq.Add(1), source)
	if len(tag) > 255 {
		tag = tag[:255]
	}
	return tag
}

// IsDecodeError reports whether err is a connection close caused by a frame the client could
// not decode: amqp091-go closes the whole connection with a frame error whose reason quotes
// ErrSyntax ("invalid field or value inside of a frame", for example an unsupported header
// field type) or ErrFrame. The message is then requeued and redelivered, and fails again.
func IsDecodeError(err error) bool {
	var e *amqp.Error
	if !errors.As(err, &e) || e.Server || e.Code != amqp.FrameError {
		return false
	}
	return strings.Contains(e.Reason, amqp.ErrSyntax.Reason) || strings.Contains(e.Reason, amqp.ErrFrame.Reason)
}
