package logquery

import (
	"context"
	"errors"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
)

// Reader is what a query reads of the log: the part of the engine's log port (router.Log)
// that the bbolt log and the stream log both implement, so that searches and statistics work
// on either.
type Reader interface {
	FirstSeq() uint64
	LastSeq() uint64
	Scan(from uint64, limit int, keep event.Keep, fn func(*event.Event) bool) (next uint64, err error)
	Get(seq uint64) (*event.Event, error)
	DeadLetters(fromID uint64, limit int, fn func(event.DeadLetter) bool) error
}

// StatsReader is what Stats reads: a Reader with record heads, replay jobs and cursors.
type StatsReader interface {
	Reader
	ScanHeads(from, to uint64, fn func(event.RecordHead) error) error
	Jobs() ([]string, error)
	Cursor(name string) (uint64, error)
	Size() int64
}

// Reopener is implemented by a log that is at times not readable: the stream log while it
// opens again on a new connection, when its bounds read as an empty log. A query waits for it
// (at most CatchUpWait) rather than answer that the log is empty.
type Reopener interface {
	// WaitReadable returns nil once the log can be read, or ctx's error.
	WaitReadable(ctx context.Context) error
}

// CatchUpWait bounds how long a query waits for a log that is reopening.
const CatchUpWait = 10 * time.Second

// ErrCatchingUp is returned by a query on a log that did not become readable within
// CatchUpWait.
var ErrCatchingUp = errors.New("the log is catching up with the stream (reopening on a new connection); try again shortly")

// WaitReadable waits, at most CatchUpWait, until st can be read; ErrCatchingUp if it cannot.
func WaitReadable(ctx context.Context, st any) error {
	r, ok := st.(Reopener)
	if !ok {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, CatchUpWait)
	defer cancel()
	if err := r.WaitReadable(wctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrCatchingUp
	}
	return nil
}
