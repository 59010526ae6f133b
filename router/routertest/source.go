package routertest

import (
	"context"
	"sync"

	"github.com/wasmrouter/wasmrouter/event"
)

// Source is an in-memory queue with a consumer: Publish adds a message, Consume hands them out
// in order, and a message handed out stays unacknowledged until AckThrough covers it. A
// rejected message with requeue, and every unacknowledged one when the consumer stops, goes
// back to the head of the queue and is delivered again with Redelivered set.
type Source struct {
	name string

	mu        sync.Mutex
	queue     []*message
	unacked   []*message // handed out, in delivery order
	acked     []*event.Event
	rejected  []*event.Event // rejected without requeue
	wake      chan struct{}
	consuming bool
	lost      bool // the channel went down: Consume reports it before the next delivery
}

type message struct {
	ev          *event.Event
	redelivered bool
	undecodable string // why the consumer could not decode its headers; "" when it could
	src         *Source
}

// NewSource returns an empty source; name is the source block's (each event's Source).
func NewSource(name string) *Source {
	return &Source{name: name, wake: make(chan struct{}, 1)}
}

// Publish queues a copy of ev as a new message.
func (s *Source) Publish(ev *event.Event) {
	c := ev.Clone()
	c.Source, c.Seq = s.name, 0
	s.mu.Lock()
	s.queue = append(s.queue, &message{ev: c, src: s})
	s.mu.Unlock()
	s.signal()
}

// PublishUndecodable queues a message whose headers the consumer cannot decode (nested too
// deep, a field type it does not know): as the RabbitMQ source does, it is delivered in its
// turn without headers and marked Undecodable, and the ones behind it follow.
func (s *Source) PublishUndecodable(routingKey string) {
	ev := &event.Event{Source: s.name, RoutingKey: routingKey, Body: []byte("undecodable")}
	s.mu.Lock()
	s.queue = append(s.queue, &message{ev: ev, undecodable: UndecodableReason, src: s})
	s.mu.Unlock()
	s.signal()
}

// UndecodableReason is why the fake source could not decode a message's headers.
const UndecodableReason = "header table cannot be decoded: nested deeper than 32 levels"

func (s *Source) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Consume hands out the queue's messages until ctx ends (see router.Source).
func (s *Source) Consume(ctx context.Context, deliver func(*event.Delivery), consuming func(up bool), undecodable func(error)) error {
	s.mu.Lock()
	s.consuming = true
	s.mu.Unlock()
	consuming(true)
	defer func() {
		s.mu.Lock()
		s.consuming = false
		s.mu.Unlock()
		consuming(false)
	}()
	for {
		s.mu.Lock()
		if s.lost {
			s.lost = false
			s.mu.Unlock()
			consuming(false)
			consuming(true)
			continue
		}
		var m *message
		if len(s.queue) > 0 {
			m = s.queue[0]
			s.queue = s.queue[1:]
			s.unacked = append(s.unacked, m)
		}
		s.mu.Unlock()
		if m == nil {
			select {
			case <-s.wake:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		deliver(&event.Delivery{Event: m.ev.Clone(), Redelivered: m.redelivered, Undecodable: m.undecodable, Ack: m})
		if ctx.Err() != nil {
			return nil
		}
	}
}

// AckThrough acknowledges m and every message handed out before it.
func (m *message) AckThrough() error {
	s := m.src
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, u := range s.unacked {
		if u == m {
			for _, a := range s.unacked[:i+1] {
				s.acked = append(s.acked, a.ev)
			}
			s.unacked = append([]*message(nil), s.unacked[i+1:]...)
			return nil
		}
	}
	return nil // acknowledged already, or requeued since: as on a closed channel
}

// Reject refuses m alone: requeued at the head of the queue, or dropped.
func (m *message) Reject(requeue bool) error {
	s := m.src
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, u := range s.unacked {
		if u == m {
			s.unacked = append(s.unacked[:i:i], s.unacked[i+1:]...)
			if requeue {
				s.queue = append([]*message{{ev: m.ev, redelivered: true, undecodable: m.undecodable, src: s}}, s.queue...)
				s.signalLocked()
			} else {
				s.rejected = append(s.rejected, m.ev)
			}
			return nil
		}
	}
	return nil
}

func (s *Source) signalLocked() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// LoseChannel returns every unacknowledged message to the queue, redelivered, as a broker does
// when a consumer's channel closes; acknowledgements of those deliveries are ignored. A running
// Consume reports consuming false then true (a new channel) before its next delivery.
func (s *Source) LoseChannel() {
	s.mu.Lock()
	s.lost = s.consuming
	back := make([]*message, 0, len(s.unacked)+len(s.queue))
	for _, m := range s.unacked {
		back = append(back, &message{ev: m.ev, redelivered: true, undecodable: m.undecodable, src: s})
	}
	s.queue = append(back, s.queue...)
	s.unacked = nil
	s.mu.Unlock()
	s.signal()
}

// Acked are the acknowledged messages' events, in order.
func (s *Source) Acked() []*event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*event.Event(nil), s.acked...)
}

// Rejected are the messages rejected without requeue.
func (s *Source) Rejected() []*event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*event.Event(nil), s.rejected...)
}

// Pending counts the messages queued or unacknowledged.
func (s *Source) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) + len(s.unacked)
}

// Consuming reports whether a Consume runs.
func (s *Source) Consuming() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.consuming
}
