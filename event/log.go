package event

import (
	"errors"
	"time"
)

// The log's vocabulary: what the engine and every log implementation (the bbolt file in store,
// the in-memory one of the engine's tests) say to each other. The engine's Log port is defined
// with these types only.

// Log errors; implementations return them (or errors wrapping them) so that callers can test
// with errors.Is.
var (
	// ErrNotFound: no event with that seq (never logged, or removed by retention).
	ErrNotFound = errors.New("store: not found")
	// ErrNoJob: no saved job with that id.
	ErrNoJob = errors.New("store: no such job")
	// ErrUnsupported: the event holds a value the log cannot encode; appending it again fails
	// again, so the message must be rejected, not requeued.
	ErrUnsupported = errors.New("store: unsupported value")
)

// DeliveryCursorPrefix starts the names of the cursors that track delivery positions (log
// retention keeps what the slowest of them has not passed).
const DeliveryCursorPrefix = "deliver/"

// Fingerprint identifies a message by where it came from and its content, not by its seq or
// ingest time, so that a broker redelivery has the fingerprint of the original.
type Fingerprint [16]byte

// Window is a range of seqs [From, To] where an append looks for a duplicate; the zero Window
// looks nowhere.
type Window struct{ From, To uint64 }

// Empty reports whether the window holds no seq.
func (w Window) Empty() bool { return w.From == 0 || w.To < w.From }

// Contains reports whether seq lies in the window.
func (w Window) Contains(seq uint64) bool { return !w.Empty() && seq >= w.From && seq <= w.To }

// DeadLetter records an event that failed for a route (Target "": a module failed it, for
// every target) or for one target of it (the broker kept refusing it).
type DeadLetter struct {
	ID       uint64 // assigned by the log, increasing
	Route    string
	Target   string
	Seq      uint64 // the event's seq in the log
	Reason   string
	Attempts int
	Time     time.Time // when it was dead-lettered; the log sets now if zero
	Redriven bool      // set once a redrive delivered it again
}

// RouteMatch is the engine's match of an event against the routes of one configuration
// generation, made once at ingest: bit i of Set says whether route i of that generation takes
// the event. A reader of the event under another generation (a reload came between) matches
// again; the zero value (Generation 0) says nothing.
type RouteMatch struct {
	Generation uint64
	Set        uint64
}

// Has reports whether the match says route index of generation takes the event; known is
// false when it does not tell (another generation, or no match carried).
func (m RouteMatch) Has(generation uint64, index int) (takes, known bool) {
	if m.Generation == 0 || m.Generation != generation || index < 0 || index >= 64 {
		return false, false
	}
	return m.Set&(1<<index) != 0, true
}

// Keep selects the records a log scan hands out, from the source and routing key in the
// record's head and the route match the event carries (the zero RouteMatch for an event the
// log read back from its storage).
type Keep func(source, routingKey string, m RouteMatch) bool

// ByHead is keep as a Keep that ignores the carried match; nil stays nil (keep everything).
func ByHead(keep func(source, routingKey string) bool) Keep {
	if keep == nil {
		return nil
	}
	return func(source, routingKey string, _ RouteMatch) bool { return keep(source, routingKey) }
}

// RecordHead is what a record says before its properties, headers and body: enough to select
// events by source, routing key and time without decoding them. Source and RoutingKey may alias
// the log's memory and are valid only during the callback that receives them.
type RecordHead struct {
	Seq        uint64
	Source     []byte
	RoutingKey []byte
	IngestTime time.Time // zero when the record has none
}
