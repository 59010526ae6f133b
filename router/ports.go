package router

import (
	"context"
	"fmt"

	"github.com/wasmrouter/wasmrouter/event"
)

// The engine's three ports. They speak of events, positions and confirmations only (the event
// package), so that the engine knows nothing of AMQP or bbolt: internal/amqpx implements
// Source and Publisher over RabbitMQ, store implements Log over a bbolt file, and routertest
// has in-memory fakes for the engine's own tests. routertest also holds one conformance suite
// per port, which every implementation passes.

// Source is where events come from: one configured source block.
type Source interface {
	// Consume consumes until ctx ends, handing each delivery to deliver in order from one
	// goroutine. consuming reports whether the source is consuming now (it goes down and up
	// with its connection); undecodable reports a message the source could not decode and will
	// see again. A delivery is settled through its Ack, in delivery order. Consume returns nil
	// when ctx ends, or an error at once for a source that cannot work; when it returns, the
	// deliveries it handed out can still be acknowledged.
	Consume(ctx context.Context, deliver func(*event.Delivery), consuming func(up bool), undecodable func(error)) error
}

// Publisher sends one delivery stream's messages to its target, pipelined: Publish returns
// once the message is on its way, and its Confirmation resolves with the target's answer.
// Confirmations of one publisher resolve in publish order.
type Publisher interface {
	// Publish sends m without waiting for the answer. An error here is an outage (it matches
	// event.ErrRefused only for a message the target can never take, such as headers it
	// cannot carry). It keeps nothing of m past its return, neither m, m.Headers nor the
	// memory of its strings and body: the stream reuses the header table once the message is
	// settled, and, where it encodes its messages from the log's bytes, the memory the log read
	// them into once they are written (BENCHMARKS.md, "Memory", "The window lets go of what it
	// published from the log").
	Publish(ctx context.Context, m *event.Message) (event.Confirmation, error)
	// WaitReady blocks until a publish has a chance to go through (a connection is up and
	// publishing is not blocked), or ctx ends.
	WaitReady(ctx context.Context) error
	// Hold starts a batch: the publishes until release go out together, in few writes. The
	// engine holds around the publishes of one batch of events, never around a wait.
	Hold() (release func())
	// Cluster names where the messages go now (for logs and status).
	Cluster() string
	// Close ends the publisher; confirmations not yet resolved resolve as outages.
	Close() error
}

// Log is the event log: the spine every event passes through (see RATIONALE.md).
type Log interface {
	// Append logs ev through the group commit and calls done once the commit is durable
	// (or failed), in append order, from the log's goroutine; done must not block on the log.
	// A redelivery whose fingerprint matches an event within dedup is not logged again: done
	// gets that event's seq and dup. With the zero fp the log fingerprints ev itself (from the
	// same encoding as its record); a message whose id the engine assigned passes the
	// fingerprint it had as received, so that its redelivery matches.
	Append(ev *event.Event, fp event.Fingerprint, dedup event.Window, done func(seq uint64, dup bool, err error))
	// Fingerprint identifies ev by origin and content (for redeliveries and assigned ids).
	Fingerprint(ev *event.Event) event.Fingerprint
	// Barrier calls done once everything appended before it is settled.
	Barrier(done func(error))
	// FirstSeq and LastSeq bound the events in the log (0 when empty); Notify is closed at the
	// next commit.
	FirstSeq() uint64
	LastSeq() uint64
	Notify() <-chan struct{}
	// Scan visits committed events from seq from, looking at no more than limit records,
	// handing fn those keep selects by source, routing key and the route match an event still
	// in memory since its append carries (event.Event.Routes); it returns the seq to resume at.
	Scan(from uint64, limit int, keep event.Keep, fn func(*event.Event) bool) (next uint64, err error)
	// Get reads one event; event.ErrNotFound when it is not (or no longer) in the log.
	Get(seq uint64) (*event.Event, error)
	// ScanHeads calls fn with the head of each record in [from, to], decoding nothing else.
	ScanHeads(from, to uint64, fn func(event.RecordHead) error) error

	// Cursors are named positions: Cursor reads one (0 when unset), SetCursor moves it (made
	// durable with the next commit), DeleteCursor forgets it.
	Cursor(name string) (uint64, error)
	SetCursor(name string, seq uint64)
	DeleteCursor(name string) error

	// Dead letters: AddDeadLetter records one durably and is idempotent on (route, target,
	// seq) until it is redriven; DeadLetters visits them by ID from fromID.
	AddDeadLetter(dl event.DeadLetter) (uint64, error)
	LastDeadLetterID() uint64
	DeadLetters(fromID uint64, limit int, fn func(event.DeadLetter) bool) error
	MarkRedriven(id uint64) error

	// Jobs are saved replay specifications, kept until the job ends (event.ErrNoJob).
	SaveJob(id string, spec []byte) error
	DeleteJob(id string) error
	Job(id string) ([]byte, error)
	Jobs() ([]string, error)

	// Health: the log's size, whether it is full (under on_full = "block") and why commits
	// fail, while they do.
	Size() int64
	Full() bool
	CommitError() error
}

// boundedScanner is a Log that can stop a Scan once the events handed to fn reach maxBytes of
// their MemSize, decoding no more than that (store.Store.ScanBounded): a stream whose window
// is bound in bytes would otherwise have the log decode events it then drops, to be decoded
// again by its next read (BENCHMARKS.md, "Replay and log inspection").
type boundedScanner interface {
	ScanBounded(from uint64, limit, maxBytes int, keep event.Keep, fn func(*event.Event) bool) (next uint64, err error)
}

// readReleaser is a Log that keeps recent events in memory for the streams that keep up
// (store.Store's ring): ReleaseRead tells it that every live stream has read the events below
// seq, so that it holds only what a stream has yet to read.
type readReleaser interface {
	ReleaseRead(seq uint64)
}

// publishSafely is pub.Publish with a panic turned into a refusal of that message: it is
// retried, then dead-lettered, as any refusal, and the stream goes on.
func publishSafely(ctx context.Context, pub Publisher, m *event.Message) (c event.Confirmation, err error) {
	defer func() {
		if p := recover(); p != nil {
			c, err = answered(fmt.Errorf("%w: publish panicked: %v", event.ErrRefused, p)), nil
		}
	}()
	return pub.Publish(ctx, m)
}

// answered is a confirmation already resolved with err.
func answered(err error) event.Confirmation {
	c := &resolved{done: make(chan struct{}), err: err}
	close(c.done)
	return c
}

type resolved struct {
	done chan struct{}
	err  error
}

func (r *resolved) Done() <-chan struct{} { return r.done }
func (r *resolved) Err() error            { return r.err }

// PairClaimer is implemented by a log that several routers share (the log on a RabbitMQ
// stream): each (route, target) pair is delivered by one router at a time. A live delivery
// stream claims its pair by its cursor's name, delivers only once the claim is granted and
// ends when it is lost. startAfter is the log's last seq when this router configured the
// pair: a pair no router delivered yet starts after the lowest such bound of the routers that
// claimed it, so an event logged while any of them had the pair configured is not skipped.
// The engine claims its pairs before its sources run.
type PairClaimer interface {
	ClaimPair(cursor string, startAfter uint64) (event.PairClaim, error)
}

// PairHolders is implemented by a log that several routers share: it names this router and
// the router that delivers each (route, target) pair, for the status.
type PairHolders interface {
	Holder() string
	// PairHolder names the router delivering the pair of a delivery cursor ("" when not
	// known); here is true when it is this router.
	PairHolder(cursor string) (holder string, here bool)
	// PairPosition is the position of a pair another router delivers, as that router last
	// reported it; ok is false when none is known.
	PairPosition(cursor string) (pos uint64, ok bool)
}
