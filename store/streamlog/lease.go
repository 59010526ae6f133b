// Package streamlog keeps the router's log in a RabbitMQ stream, so that several routers share
// one replicated log, and decides which router delivers each (route, target) pair. It speaks
// AMQP 0-9-1: docs/stream-log.md gives the measurements and the reasons, and where the ceiling
// of that choice is.
package streamlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A Lease is one router's claim on one (route, target) pair. The pair's queue (a quorum queue
// with a single active consumer) holds one token message whose body is the pair's position;
// every router consumes the queue, the broker delivers the token to one of them only, and that
// router holds the pair for as long as it keeps the token unacknowledged. When its channel
// closes (the router stopped, died or lost its connection) the broker requeues the token and
// hands it to the next consumer: the takeover.
type Lease struct {
	queue  string
	holder string
	ch     *amqp.Channel

	advanceMu sync.Mutex // one Advance at a time: its confirm is the next one on ch
	confirms  chan amqp.Confirmation

	mu      sync.Mutex
	tokens  map[uint64]position // delivery tag -> the position that token carries
	best    uint64              // the tag of the token kept
	granted chan struct{}       // closed at the first token
	lost    chan struct{}       // closed when the channel closes
	lostErr error
}

// position is a token's content: Next is the offset of the next event to deliver; Set is
// false in a pair's first token, before any router delivered it. A first token is Bounded by
// StartAfter, the log's last offset when the router that wrote it configured the pair, before
// its sources ran: the pair starts after the lowest such bound, so that no event a router
// logged while the pair was configured is skipped. A first token without a bound (written by
// an older router) starts the pair at the end of the log.
type position struct {
	Next       uint64 `json:"next"`
	Set        bool   `json:"set"`
	StartAfter uint64 `json:"start_after,omitempty"`
	Bounded    bool   `json:"bounded,omitempty"`
	Holder     string `json:"holder,omitempty"` // who wrote it, for people reading the queue
}

// after reports whether p should be kept rather than q: a set position beats an unset one, a
// higher one a lower one; between first tokens, a bounded one beats an unbounded one, a lower
// bound a higher one.
func (p position) after(q position) bool {
	if p.Set != q.Set {
		return p.Set
	}
	if p.Set {
		return p.Next > q.Next
	}
	if p.Bounded != q.Bounded {
		return p.Bounded
	}
	return p.Bounded && p.StartAfter < q.StartAfter
}

// leaseArgs make the pair's queue: replicated (the token survives a node), one active consumer.
var leaseArgs = amqp.Table{"x-queue-type": "quorum", "x-single-active-consumer": true}

// confirmTimeout bounds the wait for the broker to confirm a token.
const confirmTimeout = 30 * time.Second

// OpenLease declares the pair's queue, puts the first token in it when the pair has none, and
// starts competing for it on a channel of its own. holder names this router in the tokens it
// writes and in its consumer tag. The first token it may write has no bound: see
// OpenLeaseAfter.
func OpenLease(conn *amqp.Connection, queue, holder string) (*Lease, error) {
	return openLeaseWith(conn, queue, holder, position{})
}

// OpenLeaseAfter is OpenLease for a router that configured the pair when the log's last
// offset was startAfter: a first token it writes carries that bound (see position). It
// returns once that token is in the queue, so a caller that starts its sources after it
// cannot log an event the pair would skip.
func OpenLeaseAfter(conn *amqp.Connection, queue, holder string, startAfter uint64) (*Lease, error) {
	return openLeaseWith(conn, queue, holder, position{StartAfter: startAfter, Bounded: true})
}

func openLeaseWith(conn *amqp.Connection, queue, holder string, first position) (*Lease, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	l := &Lease{queue: queue, holder: holder, ch: ch, tokens: map[uint64]position{},
		granted: make(chan struct{}), lost: make(chan struct{})}
	if err := l.open(first); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("streamlog: lease %s: %w", queue, err)
	}
	return l, nil
}

func (l *Lease) open(first position) error {
	q, err := l.ch.QueueDeclare(l.queue, true, false, false, false, leaseArgs)
	if err != nil {
		return err
	}
	if err := l.ch.Confirm(false); err != nil {
		return err
	}
	l.confirms = l.ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	// No token waiting and nobody holding one: the pair is new. Two routers that both see this
	// both write a first token; the holder keeps one (merge in receive).
	if q.Messages == 0 && q.Consumers == 0 {
		if err := l.publishFirst(first); err != nil {
			return err
		}
	}
	// A few tokens in flight at most: the kept one, a newer one from Advance, stray first ones.
	if err := l.ch.Qos(16, 0, false); err != nil {
		return err
	}
	deliveries, err := l.ch.Consume(l.queue, l.holder, false, false, false, false, nil)
	if err != nil {
		return err
	}
	closed := l.ch.NotifyClose(make(chan *amqp.Error, 1))
	go l.receive(deliveries, closed)
	return nil
}

// publishFirst writes a pair's first token. A quorum queue that other routers declared a
// moment earlier may not take messages yet (RabbitMQ 3.10 answers its declare before its
// replicas run, and refuses what is published to it meanwhile): a refused token is written
// again, with a short wait that grows, until confirmTimeout.
func (l *Lease) publishFirst(first position) error {
	deadline := time.Now().Add(confirmTimeout)
	wait := probeFirstWait
	for {
		err := l.publish(first)
		if !errors.Is(err, errTokenRefused) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait) // the queue's replicas start within milliseconds
		wait = min(2*wait, probeMaxWait)
	}
}

var errTokenRefused = errors.New("the broker refused the token")

// publish writes a token and waits for the broker's confirm.
func (l *Lease) publish(p position) error {
	p.Holder = l.holder
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := l.ch.Publish("", l.queue, false, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body,
	}); err != nil {
		return err
	}
	select {
	case c, ok := <-l.confirms:
		if !ok {
			return l.closedErr()
		}
		if !c.Ack {
			return errTokenRefused
		}
		return nil
	case <-time.After(confirmTimeout):
		return fmt.Errorf("no confirm for the token within %s", confirmTimeout)
	}
}

// receive takes the tokens the broker hands this router. Holding several (a holder died
// between writing a new token and acknowledging the old, or two first tokens), it keeps the
// one with the furthest position and acknowledges the others.
func (l *Lease) receive(deliveries <-chan amqp.Delivery, closed <-chan *amqp.Error) {
	for d := range deliveries {
		var p position
		if err := json.Unmarshal(d.Body, &p); err != nil {
			// Not a token: drop it rather than let it block the queue.
			_ = d.Ack(false)
			continue
		}
		l.mu.Lock()
		first := !l.isGranted()
		if len(l.tokens) == 0 || !l.tokens[l.best].after(p) {
			l.best = d.DeliveryTag
		}
		l.tokens[d.DeliveryTag] = p
		for tag := range l.tokens {
			if tag != l.best {
				_ = l.ch.Ack(tag, false)
				delete(l.tokens, tag)
			}
		}
		if first {
			close(l.granted)
		}
		l.mu.Unlock()
	}
	if err := <-closed; err != nil {
		l.markLost(err)
	} else {
		l.markLost(errors.New("channel closed"))
	}
}

// markLost closes Lost, once, saying why.
func (l *Lease) markLost(why error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.lost:
	default:
		l.lostErr = why
		close(l.lost)
	}
}

func (l *Lease) isGranted() bool {
	select {
	case <-l.granted:
		return true
	default:
		return false
	}
}

func (l *Lease) closedErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lostErr != nil {
		return l.lostErr
	}
	return errors.New("channel closed")
}

// Granted is closed when this router holds the pair.
func (l *Lease) Granted() <-chan struct{} { return l.granted }

// Lost is closed when this router can no longer hold the pair (its channel closed): it must
// stop delivering the pair at once, another router takes it over.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err says why the lease was lost, once Lost is closed.
func (l *Lease) Err() error {
	select {
	case <-l.lost:
		return l.closedErr()
	default:
		return nil
	}
}

// Position is where delivery of the pair resumes: the offset of the next event, or ok false
// when no router delivered the pair yet. Meaningful once Granted is closed.
func (l *Lease) Position() (next uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, held := l.tokens[l.best]
	if !held {
		return 0, false
	}
	return p.Next, p.Set
}

// StartAfter is the bound of the pair's first token (see position): ok false when a router
// delivered the pair already or the token has no bound. Meaningful once Granted is closed.
func (l *Lease) StartAfter() (after uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, held := l.tokens[l.best]
	if !held || p.Set || !p.Bounded {
		return 0, false
	}
	return p.StartAfter, true
}

// Advance records that every event before next was delivered: it writes a token carrying
// next and, once the broker has it, the old token is acknowledged. A position at or behind
// the kept one is not written.
func (l *Lease) Advance(next uint64) error {
	select {
	case <-l.granted:
	default:
		return errors.New("streamlog: Advance on a pair this router does not hold")
	}
	l.advanceMu.Lock()
	defer l.advanceMu.Unlock()
	p := position{Next: next, Set: true}
	l.mu.Lock()
	cur := l.tokens[l.best]
	l.mu.Unlock()
	if !p.after(cur) {
		return nil
	}
	if err := l.publish(p); err != nil {
		return fmt.Errorf("streamlog: lease %s: %w", l.queue, err)
	}
	return nil
}

// Close gives the pair up: the token goes back to the queue for the next router.
// Lost is closed when Close returns, so that a Claim right after makes a new lease.
func (l *Lease) Close() error {
	err := l.ch.Close()
	select {
	case <-l.lost:
	case <-time.After(confirmTimeout):
	}
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}

// HeartbeatFor is the AMQP heartbeat of the log's connection for a takeover bound: a router
// that vanishes without closing its sockets (a machine lost, a frozen process) is dropped by
// the broker after about two missed heartbeats, and its tokens go to the other routers, well
// within takeover. AMQP counts heartbeats in whole seconds, one at least.
func HeartbeatFor(takeover time.Duration) time.Duration {
	return max(takeover/4, time.Second).Truncate(time.Second)
}
