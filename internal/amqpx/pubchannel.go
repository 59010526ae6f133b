package amqpx

import (
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// returnBuffer holds basic.return notifications until the watcher reads them. amqp091-go gives
// up on a listener that stays full for 5s, so the watcher drains it continuously.
const returnBuffer = 256

// returnKey is what a basic.return is matched on. Returns on one channel arrive in publish
// order, each before the confirm of its message, so the oldest unconfirmed publish with the
// same key is the returned one. Two pending publishes with the same key are, in practice, the
// same message published twice; telling them apart would need a visible header.
type returnKey struct {
	exchange, routingKey, messageID string
	bodyLen                         int
}

type orphanReturn struct {
	key    returnKey
	reason string
}

// pubChannel is one confirm-mode channel and the goroutine that resolves its confirms.
type pubChannel struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
	closes  chan *amqp.Error // read by the watcher only
	wake    chan struct{}
	done    chan struct{} // closed when the watcher has resolved everything and exited

	send sync.Mutex // serialises the publishers that share the channel

	mu       sync.Mutex
	pending  []*Confirm     // publish order
	orphans  []orphanReturn // returns seen before their publish was recorded
	closeErr error          // how the channel's close resolves unconfirmed publishes
	closed   bool           // the close was seen
	dead     bool           // the watcher has exited; publish resolves late arrivals itself
}

func openPubChannel(c *Cluster, conn *amqp.Connection) (*pubChannel, error) {
	ch, err := c.OpenChannel(conn)
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	pc := &pubChannel{
		conn:    conn,
		ch:      ch,
		returns: ch.NotifyReturn(make(chan amqp.Return, returnBuffer)),
		closes:  ch.NotifyClose(make(chan *amqp.Error, 1)),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go pc.watch()
	return pc, nil
}

// publish writes one message and records it, so that the order of pending is the order on the
// wire.
func (pc *pubChannel) publish(exchange, key string, msg amqp.Publishing) (*Confirm, error) {
	pc.send.Lock()
	defer pc.send.Unlock()
	dc, err := pc.ch.PublishWithDeferredConfirm(exchange, key, true, false, msg)
	if err != nil {
		return nil, err
	}
	conf := &Confirm{
		done: make(chan struct{}),
		dc:   dc,
		key:  returnKey{exchange: exchange, routingKey: key, messageID: msg.MessageId, bodyLen: len(msg.Body)},
	}
	pc.mu.Lock()
	for i, o := range pc.orphans {
		if o.key == conf.key {
			conf.returned = o.reason
			pc.orphans = append(pc.orphans[:i], pc.orphans[i+1:]...)
			break
		}
	}
	if pc.dead {
		// The channel closed while this message was being written; the library settles its
		// deferred confirmation as part of the close.
		pc.mu.Unlock()
		<-dc.Done()
		pc.mu.Lock()
		err := pc.outcomeLocked(conf)
		pc.mu.Unlock()
		conf.resolve(err)
		return conf, nil
	}
	// The watcher waits on the head's confirmation: it needs waking only for a new head. Waking
	// it for every publish of a burst cost a goroutine wake-up (often a thread's) per message.
	first := len(pc.pending) == 0
	pc.pending = append(pc.pending, conf)
	pc.mu.Unlock()
	if first {
		select {
		case pc.wake <- struct{}{}:
		default:
		}
	}
	return conf, nil
}

// watch resolves confirms in publish order until the channel closes.
func (pc *pubChannel) watch() {
	defer close(pc.done)
	for {
		pc.mu.Lock()
		var headDone <-chan struct{}
		if len(pc.pending) > 0 {
			headDone = pc.pending[0].dc.Done()
		}
		pc.mu.Unlock()
		select {
		case r, ok := <-pc.returns:
			if !ok {
				pc.returns = nil
				continue
			}
			pc.addReturn(r)
		case e, ok := <-pc.closes:
			pc.noteClose(e, ok)
			pc.finish()
			return
		case <-headDone:
			pc.resolveDone()
		case <-pc.wake:
		}
	}
}

// resolveDone resolves every leading publish whose confirmation has arrived. Only the watcher
// removes from pending, so the head stays the head while the lock is released.
func (pc *pubChannel) resolveDone() {
	for {
		pc.mu.Lock()
		if len(pc.pending) == 0 {
			pc.mu.Unlock()
			return
		}
		conf := pc.pending[0]
		pc.mu.Unlock()
		select {
		case <-conf.dc.Done():
		default:
			return
		}
		// A return is handed to listeners before the confirm that follows it is processed,
		// so any return for this publish is buffered by now.
		pc.drainReturns()
		pc.mu.Lock()
		if !conf.dc.Acked() && !pc.closed {
			// The library nacks every unconfirmed publish when the channel closes, after
			// notifying the close: tell that apart from a broker nack.
			select {
			case e, ok := <-pc.closes:
				pc.noteCloseLocked(e, ok)
			default:
			}
		}
		pc.pending[0] = nil
		pc.pending = pc.pending[1:]
		err := pc.outcomeLocked(conf)
		pc.mu.Unlock()
		conf.resolve(err)
	}
}

// finish runs once the channel has closed: the library closes the return listener and settles
// every deferred confirmation right after the close notification.
func (pc *pubChannel) finish() {
	if pc.returns != nil {
		for r := range pc.returns {
			pc.addReturn(r)
		}
	}
	pc.mu.Lock()
	rest := pc.pending
	pc.pending = nil
	pc.dead = true
	pc.mu.Unlock()
	for _, conf := range rest {
		<-conf.dc.Done()
		pc.mu.Lock()
		err := pc.outcomeLocked(conf)
		pc.mu.Unlock()
		conf.resolve(err)
	}
}

func (pc *pubChannel) drainReturns() {
	for pc.returns != nil {
		select {
		case r, ok := <-pc.returns:
			if !ok {
				pc.returns = nil
				return
			}
			pc.addReturn(r)
		default:
			return
		}
	}
}

func (pc *pubChannel) addReturn(r amqp.Return) {
	key := returnKey{exchange: r.Exchange, routingKey: r.RoutingKey, messageID: r.MessageId, bodyLen: len(r.Body)}
	reason := fmt.Sprintf("%s %d: exchange %q, routing key %q", r.ReplyText, r.ReplyCode, r.Exchange, r.RoutingKey)
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, conf := range pc.pending {
		if conf.returned == "" && conf.key == key {
			conf.returned = reason
			return
		}
	}
	pc.orphans = append(pc.orphans, orphanReturn{key: key, reason: reason})
}

func (pc *pubChannel) noteClose(e *amqp.Error, ok bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.noteCloseLocked(e, ok)
}

// noteCloseLocked decides what the close means for unconfirmed publishes: a channel exception
// on a live connection (a soft error from the broker: 404 exchange not found, 406 message too
// large) refuses them; anything else is an outage.
func (pc *pubChannel) noteCloseLocked(e *amqp.Error, ok bool) {
	if pc.closed {
		return
	}
	pc.closed = true
	switch {
	case ok && e != nil && e.Server && e.Recover && !pc.conn.IsClosed():
		pc.closeErr = &RefusedError{Reason: fmt.Sprintf("channel closed by the broker: %d %s", e.Code, e.Reason)}
	case ok && e != nil:
		pc.closeErr = fmt.Errorf("%w: %w", ErrConnectionLost, e)
	default:
		pc.closeErr = fmt.Errorf("%w: channel closed", ErrConnectionLost)
	}
}

// outcomeLocked is the result of a publish whose deferred confirmation is done.
func (pc *pubChannel) outcomeLocked(conf *Confirm) error {
	switch {
	case conf.returned != "":
		return &RefusedError{Reason: conf.returned, Unroutable: true}
	case conf.dc.Acked():
		return nil
	case pc.closed:
		return pc.closeErr
	default:
		return &RefusedError{Reason: "basic.nack: the broker could not take the message"}
	}
}
