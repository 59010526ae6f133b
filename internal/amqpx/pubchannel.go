package amqpx

import (
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
)

// returnBuffer holds basic.return notifications until the watcher reads them. amqp091-go gives
// up on a listener that stays full for 5s, so the watcher drains it continuously.
const returnBuffer = 256

// returnKey is what a basic.return is matched on. Returns on one channel arrive in publish
// order, each before the confirm of its message, so the oldest unconfirmed publish with the
// same key is the returned one. Two pending publishes with the same key are, in practice, the
// same message published twice; telling them apart would need a visible header. The routing
// key and the message id are kept hashed (newReturnKey): a publish's strings may share the
// memory of a larger buffer (a stream's events read from the log), which the key, held until
// the confirm, would otherwise keep alive (BENCHMARKS.md, "Memory", "The window lets go of
// what it published from the log"). Two different keys with the same 64-bit hash among one
// channel's unconfirmed publishes are too unlikely to matter.
type returnKey struct {
	exchange string
	hash     uint64 // of the routing key and the message id
	bodyLen  int
}

var returnKeySeed = maphash.MakeSeed()

func newReturnKey(exchange, routingKey, messageID string, bodyLen int) returnKey {
	var h maphash.Hash
	h.SetSeed(returnKeySeed)
	h.WriteString(routingKey)
	h.WriteByte(0)
	h.WriteString(messageID)
	return returnKey{exchange: exchange, hash: h.Sum64(), bodyLen: bodyLen}
}

type orphanReturn struct {
	key    returnKey
	reason string
}

// returnCounts counts one connection's basic.return frames twice: seen when the frame filter
// reads the frame (before the library dispatches it, so before any confirm that follows it),
// applied once a pubChannel has matched it to its publish. When both are equal no return is on
// its way between the wire and its publish, and a confirmed publish with no return noted is
// known to be delivered without asking the watcher (see pubChannel.settle). A return the
// library never hands to a listener (one that stayed full for 5s) keeps the counts apart for
// good: every outcome then goes through the watcher, as before, which is slower, not wrong.
type returnCounts struct {
	seen, applied atomic.Uint64
}

// settled reports whether every return seen so far has been applied. applied is read first:
// applied(t1) == seen(t2) with t1 before t2 means that at t1 every return seen was applied.
func (rc *returnCounts) settled() bool {
	applied := rc.applied.Load()
	return applied == rc.seen.Load()
}

// pubChannel is one confirm-mode channel and the goroutine that watches its returns and close.
//
// A publish's outcome is settled by whoever needs it first: the waiter itself, in Err or Wait,
// when the broker acknowledged it and no return can be in flight (the common case, without a
// goroutine in between: the library's reader wakes the waiter directly), and otherwise the
// watcher, which resolves in publish order with the returns drained and the close told apart
// from a nack, as it always did. Handing every confirm through the watcher cost a second
// goroutine hand-off per confirm frame (BENCHMARKS.md, "The router's CPU beside the loop's").
type pubChannel struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return // never reassigned; read by the watcher and, under mu, by settle
	closes  chan *amqp.Error // read by the watcher only
	wake    chan struct{}
	done    chan struct{} // closed when the watcher has resolved everything and exited
	counts  *returnCounts // nil: every outcome goes through the watcher

	send sync.Mutex // serialises the publishers that share the channel

	mu         sync.Mutex
	pending    []*Confirm     // publish order; resolved ones leave from the head
	orphans    []orphanReturn // returns seen before their publish was recorded
	closeErr   error          // how the channel's close resolves unconfirmed publishes
	closed     bool           // the close was seen
	dead       bool           // the watcher has exited; publish resolves late arrivals itself
	handedOver int            // confirmed publishes left to the watcher, not resolved yet

	byWatcher atomic.Uint64 // publishes the watcher resolved, for tests
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
		counts:  c.returnCountsOf(conn),
	}
	go pc.watch()
	return pc, nil
}

// publish writes one message and records it, so that the order of pending is the order on the
// wire.
func (pc *pubChannel) publish(exchange, key string, msg amqp.Publishing) (*Confirm, error) {
	pc.send.Lock()
	defer pc.send.Unlock()
	// The deferred confirmation lives in the Confirm: one allocation per publish, not two.
	conf := &Confirm{
		pc:  pc,
		key: newReturnKey(exchange, key, msg.MessageId, len(msg.Body)),
	}
	dc, err := pc.ch.PublishWithDeferredConfirmInto(&conf.dcv, exchange, key, true, false, msg)
	if err != nil {
		return nil, err
	}
	conf.dc = dc
	pc.mu.Lock()
	if pc.dead {
		// The channel closed while this message was being written; the library settles its
		// deferred confirmation as part of the close, and finish applied every return first.
		pc.mu.Unlock()
		<-dc.Done()
		pc.mu.Lock()
		pc.claimOrphanLocked(conf)
		pc.resolveLocked(conf, pc.outcomeLocked(conf))
		pc.mu.Unlock()
		return conf, nil
	}
	// Publishes whose waiters never asked (or not yet) leave here, so that pending holds
	// about what is unconfirmed.
	pc.trimLocked()
	// After trimLocked, which drains the returns buffered so far: this message's own return
	// may be among them, applied as an orphan since the message is not pending yet. Claimed
	// before trimLocked, it stayed an orphan, and the message resolved as confirmed.
	pc.claimOrphanLocked(conf)
	pc.pending = append(pc.pending, conf)
	pc.mu.Unlock()
	return conf, nil
}

// claimOrphanLocked gives conf the return that arrived before it was recorded, if any.
func (pc *pubChannel) claimOrphanLocked(conf *Confirm) {
	for i, o := range pc.orphans {
		if o.key == conf.key {
			conf.returned = o.reason
			pc.orphans = append(pc.orphans[:i], pc.orphans[i+1:]...)
			return
		}
	}
}

// settle resolves conf, whose deferred confirmation is done, at once when it can (acked, and
// no return in flight), and otherwise hands it to the watcher. It returns nil once conf is
// resolved, else a channel closed when it is.
func (pc *pubChannel) settle(conf *Confirm) <-chan struct{} {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if conf.resolved || pc.settleLocked(conf) {
		return nil
	}
	if conf.done == nil {
		// Made only for the few that wait: most publishes are settled by their waiter.
		conf.done = make(chan struct{})
	}
	if pc.dead {
		return conf.done // finish resolves it
	}
	if !conf.handedOver {
		conf.handedOver = true
		pc.handedOver++
		select {
		case pc.wake <- struct{}{}:
		default:
		}
	}
	return conf.done
}

// settleLocked resolves conf if its outcome is known without the watcher: the broker acked it,
// and every return read from the connection so far has been matched to its publish (a return
// comes before the confirm of its message, so conf's would be among them).
func (pc *pubChannel) settleLocked(conf *Confirm) bool {
	if pc.counts == nil || !conf.dc.Acked() {
		// A nack may be the library's on a close the watcher has yet to note.
		return false
	}
	pc.drainReturnsLocked()
	if conf.returned == "" && !pc.counts.settled() {
		return false
	}
	pc.resolveLocked(conf, pc.outcomeLocked(conf))
	return true
}

// trimLocked drops resolved publishes from the head of pending, resolving on the way those
// confirmed ones whose outcome is known; the first it cannot settle stays for its waiter or
// the watcher.
func (pc *pubChannel) trimLocked() {
	for len(pc.pending) > 0 {
		head := pc.pending[0]
		if !head.resolved && (!head.dc.Settled() || !pc.settleLocked(head)) {
			return
		}
		pc.pending[0] = nil
		pc.pending = pc.pending[1:]
	}
}

// resolveLocked records conf's outcome once.
func (pc *pubChannel) resolveLocked(conf *Confirm, err error) {
	if conf.resolved {
		return
	}
	conf.resolved = true
	if conf.handedOver {
		pc.handedOver--
	}
	conf.err = err
	if conf.done != nil {
		close(conf.done)
	}
}

// watch drains returns and, while some waiter has handed a publish over, resolves confirms in
// publish order, until the channel closes.
func (pc *pubChannel) watch() {
	defer close(pc.done)
	returns := pc.returns
	for {
		pc.mu.Lock()
		pc.trimLocked()
		var headDone <-chan struct{}
		if pc.handedOver > 0 && len(pc.pending) > 0 {
			headDone = pc.pending[0].dc.Done()
		}
		pc.mu.Unlock()
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			pc.mu.Lock()
			pc.addReturnLocked(r)
			pc.mu.Unlock()
		case e, ok := <-pc.closes:
			pc.noteClose(e, ok)
			pc.finish(returns)
			return
		case <-headDone:
			pc.resolveDone()
		case <-pc.wake:
		}
	}
}

// resolveDone resolves every leading publish whose confirmation has arrived. Only the watcher
// resolves a publish that is not acked, and only at the head, so returns and the close are
// read in the order the library dispatched them.
func (pc *pubChannel) resolveDone() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for len(pc.pending) > 0 {
		conf := pc.pending[0]
		if !conf.resolved {
			if !conf.dc.Settled() {
				return
			}
			// A return is handed to listeners before the confirm that follows it is
			// processed, so any return for this publish is buffered by now, or applied.
			pc.drainReturnsLocked()
			if !conf.dc.Acked() && !pc.closed {
				// The library nacks every unconfirmed publish when the channel closes, after
				// notifying the close: tell that apart from a broker nack.
				select {
				case e, ok := <-pc.closes:
					pc.noteCloseLocked(e, ok)
				default:
				}
			}
			pc.resolveLocked(conf, pc.outcomeLocked(conf))
			pc.byWatcher.Add(1)
		}
		pc.pending[0] = nil
		pc.pending = pc.pending[1:]
	}
}

// finish runs once the channel has closed: the library closes the return listener and settles
// every deferred confirmation right after the close notification.
func (pc *pubChannel) finish(returns chan amqp.Return) {
	if returns != nil {
		for r := range returns {
			pc.mu.Lock()
			pc.addReturnLocked(r)
			pc.mu.Unlock()
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
		pc.resolveLocked(conf, pc.outcomeLocked(conf))
		pc.mu.Unlock()
	}
}

// drainReturnsLocked applies the returns buffered so far.
func (pc *pubChannel) drainReturnsLocked() {
	for {
		select {
		case r, ok := <-pc.returns:
			if !ok {
				return
			}
			pc.addReturnLocked(r)
		default:
			return
		}
	}
}

func (pc *pubChannel) addReturnLocked(r amqp.Return) {
	if pc.counts != nil {
		// Counted once matched: settled() must not see it applied before its publish is marked.
		defer pc.counts.applied.Add(1)
	}
	key := newReturnKey(r.Exchange, r.RoutingKey, r.MessageId, len(r.Body))
	reason := fmt.Sprintf("%s %d: exchange %q, routing key %q", r.ReplyText, r.ReplyCode, r.Exchange, r.RoutingKey)
	for _, conf := range pc.pending {
		if !conf.resolved && conf.returned == "" && conf.key == key {
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
