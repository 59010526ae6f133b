package streamlog

import (
	"errors"
	"sort"
	"time"
)

// balanceEvery is how often a router compares the pairs it holds with its share, unless
// Options.BalanceEvery says otherwise.
const balanceEvery = 5 * time.Second

// errReleased is why a lease this router gave up to even the pairs out is lost.
var errReleased = errors.New("pair handed to another router to even the pairs out")

// balance hands pairs over to the other routers while this one holds more than its share:
// the broker gives a pair's token to the first router that consumes its queue and leaves it
// there, so without this the router that starts first would deliver every pair.
func (s *Store) balance() {
	defer close(s.balanced)
	if s.opts.BalanceEvery < 0 {
		return
	}
	tick := time.NewTicker(s.opts.BalanceEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			s.balanceOnce()
		}
	}
}

// balanceOnce releases one pair when this router holds more than its share: the pairs it
// competes for divided by the routers competing (the consumers of a pair's queue: every
// router consumes every pair's queue), rounded up. One pair at a time, so that the routers,
// which all do this, converge without handing pairs back and forth.
func (s *Store) balanceOnce() {
	s.mu.Lock()
	var held []string
	for name, l := range s.leases {
		if isClosedCh(l.Granted()) && !isClosedCh(l.Lost()) {
			held = append(held, name)
		}
	}
	total := len(s.leases)
	s.mu.Unlock()
	if len(held) <= 1 {
		return
	}
	routers := s.competitors()
	if routers <= 1 {
		return
	}
	if share := (total + routers - 1) / routers; len(held) <= share {
		return
	}
	sort.Strings(held)
	s.release(held[len(held)-1])
}

// RollCallQueue is the queue every router on the log in stream consumes and nobody publishes
// to: its consumer count is the number of routers. (A pair's queue cannot tell: with a single
// active consumer, RabbitMQ counts only the active one.)
func RollCallQueue(stream string) string { return stream + ".routers" }

// answerRollCall makes this router one of the roll-call queue's consumers for as long as its
// connection lives; the queue goes away with its last consumer.
func (s *Store) answerRollCall() error {
	ch, err := s.conn.Channel()
	if err != nil {
		return err
	}
	q := RollCallQueue(s.opts.Stream)
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		return err
	}
	if _, err := ch.Consume(q, s.holder, true, false, false, false, nil); err != nil {
		return err
	}
	s.rollCall = ch
	return nil
}

// competitors counts the routers on the log (0 when the broker cannot say).
func (s *Store) competitors() int {
	ch, err := s.conn.Channel()
	if err != nil {
		return 0
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(RollCallQueue(s.opts.Stream), false, true, false, false, nil)
	if err != nil {
		return 0
	}
	return q.Consumers
}

// release gives a held pair up: the lease is lost at once, so that delivery stops, then the
// latest position goes into the token, so that the next router resumes right there (what
// was in flight and confirmed after that is delivered again), and the token goes back to
// the queue. The engine claims the pair again, behind the routers already waiting for it.
func (s *Store) release(name string) {
	s.mu.Lock()
	l := s.leases[name]
	s.mu.Unlock()
	if l == nil {
		return
	}
	l.markLost(errReleased)
	s.mu.Lock()
	pos, written := s.local[name], s.written[name]
	s.mu.Unlock()
	if pos > written && l.Advance(pos+1) == nil {
		s.mu.Lock()
		s.written[name] = max(s.written[name], pos)
		s.mu.Unlock()
	}
	_ = l.Close()
}
