package streamlog

import (
	"context"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/store"
)

// Connector hands out the live connection to the cluster that holds the log, waiting until
// there is one (internal/amqpx's Cluster does, reconnecting with backoff).
type Connector interface {
	Connection(ctx context.Context) (*amqp.Connection, error)
}

// Reopening is a Store that outlives its connection: when the connection is lost it opens the
// log again on the next one. Meanwhile appends and reads fail with ErrClosed (the sources stop
// acknowledging), the pairs this router held are lost (Claim again for the new ones) and seqs
// go on where they were, since they are the stream's offsets. The router's own cursors (not the
// pairs') are carried over.
type Reopening struct {
	connect Connector
	opts    Options
	holder  string

	mu      sync.Mutex
	cur     *Store        // nil while reopening
	order   *inOrder      // appends' completions, in order across the logs
	changed chan struct{} // closed when cur is replaced or lost
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}

	notifyMu sync.Mutex
	notifyOf <-chan struct{} // the store's Notify channel that merged was made for
	merged   chan struct{}
}

// writeHolder is a Connector whose connections can hold their writes for a burst of
// publishes (internal/amqpx's Cluster).
type writeHolder interface {
	Hold(conn *amqp.Connection) (release func())
}

// spareDialer is a Connector that opens spare connections (internal/amqpx's Cluster).
type spareDialer interface {
	Dial(ctx context.Context, role string) (*amqp.Connection, error)
}

// withHold lets the log on conn hold the connection's writes while it publishes what is
// queued, and check through a spare connection that a stream can take messages
// (Options.Spare).
func withHold(connect Connector, conn *amqp.Connection, opts Options) Options {
	if h, ok := connect.(writeHolder); ok {
		opts.hold = func() func() { return h.Hold(conn) }
	}
	if d, ok := connect.(spareDialer); ok && opts.Spare == nil {
		opts.Spare = func(ctx context.Context) (*amqp.Connection, error) { return d.Dial(ctx, "log-probe") }
	}
	return opts
}

// reopenBackoff bounds the wait between two failed opens.
const reopenBackoff = 2 * time.Second

// openAttempts is how many times OpenReopening tries before it reports the error.
const openAttempts = 5

// OpenReopening opens the log on the connector's connection, waiting for one until ctx ends.
// A first open that fails is tried again a few times: routers that start together race to
// declare the stream, and the broker may close a loser's connection while the stream it just
// saw declared is still being set up ("Stream not found").
func OpenReopening(ctx context.Context, connect Connector, opts Options, holder string) (*Reopening, error) {
	var (
		conn *amqp.Connection
		s    *Store
		err  error
	)
	for attempt := 1; ; attempt++ {
		if conn, err = connect.Connection(ctx); err != nil {
			return nil, err
		}
		if s, err = OpenStore(conn, withHold(connect, conn, opts), holder); err == nil {
			break
		}
		if attempt == openAttempts {
			return nil, err
		}
		select {
		case <-time.After(reopenBackoff):
		case <-ctx.Done():
			return nil, err
		}
	}
	r := &Reopening{connect: connect, opts: opts, holder: holder, cur: s, changed: make(chan struct{}), done: make(chan struct{}), order: newInOrder()}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	go r.watch(s, conn)
	return r, nil
}

// watch reopens the log each time the current one ends, until Close.
func (r *Reopening) watch(s *Store, conn *amqp.Connection) {
	defer close(r.done)
	for {
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-closed:
		case <-s.pubDone: // the log failed with its connection still up
		case <-r.ctx.Done():
			return
		}
		r.swap(nil)
		local := s.ownCursors()
		_ = s.Close()
		for {
			var err error
			if conn, err = r.connect.Connection(r.ctx); err != nil {
				return // Close
			}
			if s, err = OpenStore(conn, withHold(r.connect, conn, r.opts), r.holder); err == nil {
				break
			}
			select {
			case <-time.After(reopenBackoff):
			case <-r.ctx.Done():
				return
			}
		}
		s.restoreCursors(local)
		r.swap(s)
	}
}

func (r *Reopening) swap(s *Store) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = s
	close(r.changed)
	r.changed = make(chan struct{})
}

// Current is the open Store, or nil while the log is being reopened.
func (r *Reopening) Current() *Store {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// Changed is closed when the log is lost or reopened.
func (r *Reopening) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Claim returns the lease of a delivery cursor's pair on the current log.
func (r *Reopening) Claim(name string) (*Lease, error) {
	if s := r.Current(); s != nil {
		return s.Claim(name)
	}
	return nil, ErrClosed
}

func (r *Reopening) Append(ev *event.Event, fp store.Fingerprint, dedup store.Window, done func(seq uint64, dup bool, err error)) {
	done = r.order.wrap(done)
	if s := r.Current(); s != nil {
		s.Append(ev, fp, dedup, done)
		return
	}
	done(0, false, ErrClosed)
}

func (r *Reopening) Fingerprint(ev *event.Event) store.Fingerprint { return store.FingerprintOf(ev) }

// Barrier calls done once every append made before it, on this log or on one lost since, is
// done.
func (r *Reopening) Barrier(done func(error)) {
	ordered := r.order.wrap(func(_ uint64, _ bool, err error) { done(err) })
	if s := r.Current(); s != nil {
		s.Barrier(func(err error) { ordered(0, false, err) })
		return
	}
	ordered(0, false, ErrClosed)
}

// WaitReadable returns once the log is open (nil) or when ctx ends (its error): while it is
// being reopened its bounds read as an empty log, and a reader must not take that for one.
func (r *Reopening) WaitReadable(ctx context.Context) error {
	for {
		changed := r.Changed()
		if r.Current() != nil {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *Reopening) FirstSeq() uint64 {
	if s := r.Current(); s != nil {
		return s.FirstSeq()
	}
	return 0
}

func (r *Reopening) LastSeq() uint64 {
	if s := r.Current(); s != nil {
		return s.LastSeq()
	}
	return 0
}

// Notify is closed when LastSeq moves, and when the log is lost or reopened.
func (r *Reopening) Notify() <-chan struct{} {
	changed := r.Changed()
	s := r.Current()
	if s == nil {
		return changed
	}
	notify := s.Notify()
	// One merged channel per store channel, however many callers wait for it.
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	if r.notifyOf == notify {
		return r.merged
	}
	out := make(chan struct{})
	r.notifyOf, r.merged = notify, out
	go func() {
		select {
		case <-notify:
		case <-changed:
		}
		close(out)
	}()
	return out
}

func (r *Reopening) Scan(from uint64, limit int, keep event.Keep, fn func(*event.Event) bool) (uint64, error) {
	if s := r.Current(); s != nil {
		return s.Scan(from, limit, keep, fn)
	}
	return from, ErrClosed
}

func (r *Reopening) Get(seq uint64) (*event.Event, error) {
	if s := r.Current(); s != nil {
		return s.Get(seq)
	}
	return nil, ErrClosed
}

func (r *Reopening) ScanHeads(from, to uint64, fn func(store.RecordHead) error) error {
	if s := r.Current(); s != nil {
		return s.ScanHeads(from, to, fn)
	}
	return ErrClosed
}

func (r *Reopening) Cursor(name string) (uint64, error) {
	if s := r.Current(); s != nil {
		return s.Cursor(name)
	}
	return 0, ErrClosed
}

func (r *Reopening) SetCursor(name string, seq uint64) {
	if s := r.Current(); s != nil {
		s.SetCursor(name, seq)
	}
}

func (r *Reopening) DeleteCursor(name string) error {
	if s := r.Current(); s != nil {
		return s.DeleteCursor(name)
	}
	return ErrClosed
}

func (r *Reopening) AddDeadLetter(dl store.DeadLetter) (uint64, error) {
	if s := r.Current(); s != nil {
		return s.AddDeadLetter(dl)
	}
	return 0, ErrClosed
}

func (r *Reopening) LastDeadLetterID() uint64 {
	if s := r.Current(); s != nil {
		return s.LastDeadLetterID()
	}
	return 0
}

func (r *Reopening) DeadLetters(fromID uint64, limit int, fn func(store.DeadLetter) bool) error {
	if s := r.Current(); s != nil {
		return s.DeadLetters(fromID, limit, fn)
	}
	return ErrClosed
}

func (r *Reopening) MarkRedriven(id uint64) error {
	if s := r.Current(); s != nil {
		return s.MarkRedriven(id)
	}
	return ErrClosed
}

func (r *Reopening) SaveJob(id string, spec []byte) error {
	if s := r.Current(); s != nil {
		return s.SaveJob(id, spec)
	}
	return ErrClosed
}

func (r *Reopening) DeleteJob(id string) error {
	if s := r.Current(); s != nil {
		return s.DeleteJob(id)
	}
	return ErrClosed
}

func (r *Reopening) Job(id string) ([]byte, error) {
	if s := r.Current(); s != nil {
		return s.Job(id)
	}
	return nil, ErrClosed
}

func (r *Reopening) Jobs() ([]string, error) {
	if s := r.Current(); s != nil {
		return s.Jobs()
	}
	return nil, ErrClosed
}

func (r *Reopening) Size() int64 { return 0 }

func (r *Reopening) Full() bool { return false }

// CommitError is ErrClosed while the log is being reopened.
func (r *Reopening) CommitError() error {
	if s := r.Current(); s != nil {
		return s.CommitError()
	}
	return ErrClosed
}

// Close closes the current log (its pairs go to the other routers) and stops reopening.
func (r *Reopening) Close() error {
	r.cancel()
	<-r.done
	r.mu.Lock()
	s := r.cur
	r.cur = nil
	r.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Close()
}

// ownCursors are the cursors that are this router's own (not the pairs'), to carry over.
func (s *Store) ownCursors() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	own := map[string]uint64{}
	for name, pos := range s.local {
		if !isDelivery(name) {
			own[name] = pos
		}
	}
	return own
}

func (s *Store) restoreCursors(own map[string]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, pos := range own {
		s.local[name] = max(s.local[name], pos)
	}
}
