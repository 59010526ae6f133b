package streamlog

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/store"
)

// Store is the whole log on RabbitMQ, with the bbolt log's methods: the events' stream (Log),
// the control stream (dead letters, jobs) and the cursors. A delivery cursor (a name under
// store.DeliveryCursorPrefix) is the position in the token of the pair's lease, shared by the
// routers; other cursors are this router's own and kept in memory.
type Store struct {
	*Log
	control *Control

	conn      *amqp.Connection
	holder    string
	positions *peerPositions

	mu       sync.Mutex
	local    map[string]uint64 // cursors: this router's latest position
	written  map[string]uint64 // delivery cursors: the position last written into the token
	leases   map[string]*Lease
	stop     chan struct{}
	stopped  chan struct{}
	balanced chan struct{} // closed when balance returns
	// rollCall consumes RollCallQueue once this router claims a pair, so that the routers
	// that deliver pairs can be counted (not the tools that only read the log).
	rollCall *amqp.Channel
}

// flushEvery is how often moved delivery cursors are written into their tokens: a takeover
// resumes at most this much behind the holder's last confirm (those events are delivered
// twice).
const flushEvery = 200 * time.Millisecond

// OpenStore opens the log opts.Stream and its control stream on conn. holder names this
// router in the pairs' tokens.
func OpenStore(conn *amqp.Connection, opts Options, holder string) (*Store, error) {
	l, err := Open(conn, opts)
	if err != nil {
		return nil, err
	}
	c, err := OpenControl(conn, opts)
	if err != nil {
		l.Close()
		return nil, err
	}
	pp, err := openPositions(conn, opts.Stream, holder)
	if err != nil {
		c.Close()
		l.Close()
		return nil, fmt.Errorf("streamlog: positions exchange: %w", err)
	}
	s := &Store{Log: l, control: c, conn: conn, holder: holder, positions: pp,
		local: map[string]uint64{}, written: map[string]uint64{}, leases: map[string]*Lease{},
		stop: make(chan struct{}), stopped: make(chan struct{}), balanced: make(chan struct{})}
	go s.flush()
	go s.balance()
	return s, nil
}

// LeaseQueue is the name of the queue holding the token of a delivery cursor's pair.
func LeaseQueue(stream, cursor string) string {
	return stream + ".pair." + strings.TrimPrefix(cursor, store.DeliveryCursorPrefix)
}

func isDelivery(name string) bool { return strings.HasPrefix(name, store.DeliveryCursorPrefix) }

// Claim starts competing for the pair of a delivery cursor and returns its lease: this router
// delivers the pair after Granted is closed and must stop when Lost is. A lease that is still
// alive is returned again; a lost one is replaced by a new claim. A first token it writes has
// no bound: the router claims with ClaimAfter.
func (s *Store) Claim(name string) (*Lease, error) {
	return s.claim(name, position{})
}

// ClaimAfter is Claim by a router that configured the pair when the log's last offset was
// startAfter (see OpenLeaseAfter).
func (s *Store) ClaimAfter(name string, startAfter uint64) (*Lease, error) {
	return s.claim(name, position{StartAfter: startAfter, Bounded: true})
}

func (s *Store) claim(name string, first position) (*Lease, error) {
	if !isDelivery(name) {
		return nil, fmt.Errorf("streamlog: %q is not a delivery cursor", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.leases[name]; l != nil {
		select {
		case <-l.Lost():
			_ = l.Close()
		default:
			return l, nil
		}
	}
	if s.rollCall == nil {
		if err := s.answerRollCall(); err != nil {
			return nil, fmt.Errorf("streamlog: roll-call queue: %w", err)
		}
	}
	l, err := openLeaseWith(s.conn, LeaseQueue(s.opts.Stream, name), s.holder, first)
	if err != nil {
		return nil, err
	}
	s.leases[name] = l
	go s.noteWhenGranted(name, l)
	return l, nil
}

// Cursor reads a cursor: for a delivery cursor whose pair this router holds, the furthest of
// the token's position and this router's own; otherwise this router's own latest position;
// 0 when unset. (A router that held a pair before, lost it and holds it again resumes where
// the router in between left it.)
func (s *Store) Cursor(name string) (uint64, error) {
	s.mu.Lock()
	pos := s.local[name]
	l := s.leases[name]
	s.mu.Unlock()
	if l == nil {
		return pos, nil
	}
	select {
	case <-l.Lost():
		return pos, nil
	case <-l.Granted():
		if next, set := l.Position(); set && next > 0 {
			pos = max(pos, next-1)
		}
	default:
	}
	return pos, nil
}

// SetCursor moves a cursor forward (never back). A delivery cursor's new position is written
// into its pair's token within flushEvery, while this router holds the pair.
func (s *Store) SetCursor(name string, seq uint64) {
	if isDelivery(name) {
		if _, err := s.Claim(name); err != nil {
			return // the position stays local; the next SetCursor tries again
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq > s.local[name] {
		s.local[name] = seq
	}
}

// DeleteCursor forgets a cursor; a delivery cursor's pair queue is deleted with its token.
func (s *Store) DeleteCursor(name string) error {
	s.mu.Lock()
	delete(s.local, name)
	delete(s.written, name)
	l := s.leases[name]
	delete(s.leases, name)
	s.mu.Unlock()
	if l != nil {
		_ = l.Close()
	}
	if !isDelivery(name) {
		return nil
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	_, err = ch.QueueDelete(LeaseQueue(s.opts.Stream, name), false, false, false)
	return err
}

// flush writes moved delivery cursors into the tokens of the pairs this router holds.
func (s *Store) flush() {
	defer close(s.stopped)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			s.flushOnce()
			return
		case <-tick.C:
			s.flushOnce()
		}
	}
}

func (s *Store) flushOnce() {
	type move struct {
		name  string
		lease *Lease
		pos   uint64
	}
	var moves []move
	s.mu.Lock()
	for name, l := range s.leases {
		if pos := s.local[name]; pos > s.written[name] {
			moves = append(moves, move{name, l, pos})
		}
	}
	s.mu.Unlock()
	for _, m := range moves {
		select {
		case <-m.lease.Granted():
		default:
			continue
		}
		if m.lease.Advance(m.pos+1) == nil {
			s.mu.Lock()
			s.written[m.name] = max(s.written[m.name], m.pos)
			s.mu.Unlock()
		}
	}
	s.positions.send(s.holder, s.heldPositions())
}

// heldPositions are the positions of the pairs this router holds, for the other routers'
// status (positions.go).
func (s *Store) heldPositions() map[string]uint64 {
	s.mu.Lock()
	var held []string
	for name, l := range s.leases {
		if isClosedCh(l.Granted()) && !isClosedCh(l.Lost()) {
			held = append(held, name)
		}
	}
	s.mu.Unlock()
	out := make(map[string]uint64, len(held))
	for _, name := range held {
		if pos, err := s.Cursor(name); err == nil {
			out[name] = pos
		}
	}
	return out
}

// PairPosition is the position of a pair another router holds, as it last sent it.
func (s *Store) PairPosition(cursor string) (uint64, bool) { return s.positions.get(cursor) }

// Fingerprint identifies ev by origin and content.
func (s *Store) Fingerprint(ev *event.Event) store.Fingerprint { return store.FingerprintOf(ev) }

// Barrier calls done once every append made before it is done.
func (s *Store) Barrier(done func(error)) {
	s.enqueueDone(&pendingAppend{barrier: true, done: func(_ uint64, _ bool, err error) { done(err) }})
}

// Size is not known over AMQP 0-9-1 (the stream's size is the broker's); it reports 0.
func (s *Store) Size() int64 { return 0 }

// Full is always false: the broker enforces the stream's limits by removing its oldest
// segments, never by refusing appends.
func (s *Store) Full() bool { return false }

// CommitError says why appends fail, while they do.
func (s *Store) CommitError() error {
	select {
	case <-s.pubDone:
		return s.failure()
	default:
		return nil
	}
}

// Dead letters and jobs are the control stream's.

func (s *Store) AddDeadLetter(dl store.DeadLetter) (uint64, error) {
	return s.control.AddDeadLetter(dl)
}
func (s *Store) LastDeadLetterID() uint64 { return s.control.LastDeadLetterID() }
func (s *Store) DeadLetters(fromID uint64, limit int, fn func(store.DeadLetter) bool) error {
	return s.control.DeadLetters(fromID, limit, fn)
}
func (s *Store) MarkRedriven(id uint64) error         { return s.control.MarkRedriven(id) }
func (s *Store) SaveJob(id string, spec []byte) error { return s.control.SaveJob(id, spec) }
func (s *Store) DeleteJob(id string) error            { return s.control.DeleteJob(id) }
func (s *Store) Job(id string) ([]byte, error)        { return s.control.Job(id) }
func (s *Store) Jobs() ([]string, error)              { return s.control.Jobs() }

// Close writes the last positions, gives up the pairs (their tokens go to the other routers)
// and closes the streams' channels. The connection is the caller's.
func (s *Store) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	<-s.stopped
	<-s.balanced
	s.mu.Lock()
	leases := s.leases
	s.leases = map[string]*Lease{}
	s.mu.Unlock()
	var errs []error
	for _, l := range leases {
		errs = append(errs, l.Close())
	}
	s.mu.Lock()
	rollCall := s.rollCall
	s.mu.Unlock()
	if rollCall != nil {
		_ = rollCall.Close()
	}
	s.positions.close()
	s.control.Close()
	s.Log.Close()
	return errors.Join(errs...)
}
