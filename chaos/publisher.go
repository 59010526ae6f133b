package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// headerSentAt carries the publish time (Unix ns, int64), to measure delivery latency.
const headerSentAt = "chaos-sent-ns"

// messageGen makes message n: its routing key, the message (the publisher sets the id and the
// send time) and its class, which says where the checker expects it (see expectation).
type messageGen func(n int) (key string, msg amqp.Publishing, class string)

// plainMessages is the default traffic: small JSON bodies with a few typed headers.
func plainMessages(n int) (string, amqp.Publishing, string) {
	return "chaos.event", amqp.Publishing{
		ContentType: "application/json",
		Headers:     amqp.Table{"chaos-n": int64(n), "tenant": "acme"},
		Body:        fmt.Appendf(nil, `{"n":%d,"amount":%d}`, n, n%1000),
	}, classDeliver
}

// publisher publishes at a steady rate with confirms, reconnecting after a connection loss. It
// counts a message as published once the client took it, and as confirmed once the broker
// acknowledged it; a message whose confirm never came is not counted, though it may arrive.
type publisher struct {
	b        *broker
	connName string
	exchange string
	prefix   string
	rate     int
	gen      messageGen

	stop chan struct{}
	done chan struct{}

	inflight atomic.Int64 // published, confirm not yet resolved

	mu         sync.Mutex
	published  int
	confirmed  map[string]string // id -> class
	reconnects int
	lastErr    error
}

// inflightCap bounds the messages awaiting a confirm, so that a broker that stops confirming
// slows the publisher down instead of growing memory.
const inflightCap = 20000

type pendingConfirm struct {
	id, class string
	dc        *amqp.DeferredConfirmation
}

func startPublisher(b *broker, connName, exchange, prefix string, rate int, gen messageGen) *publisher {
	p := &publisher{b: b, connName: connName, exchange: exchange, prefix: prefix, rate: rate, gen: gen,
		stop: make(chan struct{}), done: make(chan struct{}), confirmed: map[string]string{}}
	go p.run()
	return p
}

func (p *publisher) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

func (p *publisher) run() {
	defer close(p.done)
	pending := make(chan pendingConfirm, inflightCap)
	var confirmers sync.WaitGroup
	confirmers.Go(func() { p.confirm(pending) })
	defer func() { close(pending); confirmers.Wait() }()

	start := time.Now()
	sent := 0
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !p.stopped() {
		conn, err := p.b.dial(p.connName)
		var ch *amqp.Channel
		if err == nil {
			ch, err = conn.Channel()
			if err == nil {
				err = ch.Confirm(false)
			}
		}
		if err != nil {
			p.noteErr(err, conn)
			select {
			case <-p.stop:
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		p.mu.Lock()
		p.reconnects++
		p.mu.Unlock()
		err = p.publishOn(ch, pending, start, &sent, tick.C)
		if err == nil {
			p.awaitConfirms(10 * time.Second)
		}
		p.noteErr(err, conn)
	}
}

func (p *publisher) noteErr(err error, conn *amqp.Connection) {
	if conn != nil {
		_ = conn.Close() // resolves the confirms still due on it as not confirmed
	}
	if err != nil {
		p.mu.Lock()
		p.lastErr = err
		p.mu.Unlock()
	}
}

// publishOn publishes on ch until stopped or until the channel fails. A backlog of more than a
// second (after an outage) is dropped from the schedule, not sent in a burst.
func (p *publisher) publishOn(ch *amqp.Channel, pending chan<- pendingConfirm, start time.Time, sent *int, tick <-chan time.Time) error {
	for {
		select {
		case <-p.stop:
			return nil
		case <-tick:
		}
		due := int(time.Since(start).Seconds() * float64(p.rate))
		if due-*sent > p.rate {
			*sent = due - p.rate/10
		}
		for ; *sent < due; *sent++ {
			key, msg, class := p.gen(*sent)
			msg.MessageId = fmt.Sprintf("%s-%07d", p.prefix, *sent)
			msg.DeliveryMode = amqp.Persistent
			if msg.Headers == nil {
				msg.Headers = amqp.Table{}
			}
			msg.Headers[headerSentAt] = time.Now().UnixNano()
			dc, err := ch.PublishWithDeferredConfirm(p.exchange, key, false, false, msg)
			if err != nil {
				*sent++ // this id is spent: it may or may not have reached the broker
				return err
			}
			p.mu.Lock()
			p.published++
			p.mu.Unlock()
			p.inflight.Add(1)
			// The confirmer drains pending, so this waits only while inflightCap confirms are due.
			pending <- pendingConfirm{id: msg.MessageId, class: class, dc: dc}
		}
	}
}

// confirm records, in publish order, the messages the broker acknowledged.
func (p *publisher) confirm(pending <-chan pendingConfirm) {
	for pc := range pending {
		<-pc.dc.Done()
		if pc.dc.Acked() {
			p.mu.Lock()
			p.confirmed[pc.id] = pc.class
			p.mu.Unlock()
		}
		p.inflight.Add(-1)
	}
}

// awaitConfirms waits, at the end, for the broker to confirm what is still due, up to timeout.
func (p *publisher) awaitConfirms(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for p.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// end stops publishing and waits for the confirms still due (the connection is closed after
// at most 10s, which resolves the rest as not confirmed).
func (p *publisher) end() {
	close(p.stop)
	<-p.done
}

// counts returns what was published and confirmed so far.
func (p *publisher) counts() (published, confirmed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.published, len(p.confirmed)
}

// connects is how many connections the publisher opened.
func (p *publisher) connects() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reconnects
}

// confirmedIDs returns a copy of the confirmed ids with their classes.
func (p *publisher) confirmedIDs() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]string, len(p.confirmed))
	for k, v := range p.confirmed {
		out[k] = v
	}
	return out
}
