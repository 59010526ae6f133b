package store

import (
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/wasmrouter/wasmrouter/event"
)

// queue holds the work of the appender goroutine. Appends and barriers keep their call order
// in one lane; the other writes (dead letters, cursor resets and deletions) go in another,
// which is never held back when the store is full.
type queue struct {
	mu      sync.Mutex
	appends []appendItem
	head    int // appends[:head] have been taken
	ops     []opItem
	closing bool
	wake    chan struct{} // capacity 1: "there is something to look at"
	// events counts the events in appends[head:]. While wantEvents > 0 (a small batch waits for
	// more, see Store.gather) an append wakes the appender only once that many events are
	// queued: waking it for each one cost a context switch and a take per event, which at a few
	// thousand events per second was several wake-ups per commit for nothing.
	events     int
	wantEvents int
}

type appendItem struct {
	ev      *event.Event // nil for a barrier
	rec     []byte
	buf     *[]byte // rec's pooled buffer (recordBufs), nil when rec is not pooled
	fp      Fingerprint
	dedup   Window // empty: no redelivery check
	encErr  error
	done    func(seq uint64, dup bool, err error)
	barrier func(err error)

	seq uint64 // set while committing
	dup bool
}

// opItem is a write other than an append. An error from apply fails that operation only, so
// apply must check before it writes anything.
type opItem struct {
	apply func(tx *bolt.Tx) error
	done  chan error // capacity 1
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closing = true
	q.mu.Unlock()
	q.signal()
}

// push queues an append or a barrier; false once the store is closing.
func (q *queue) push(it appendItem) bool {
	q.mu.Lock()
	if q.closing {
		q.mu.Unlock()
		return false
	}
	q.appends = append(q.appends, it)
	wake := true
	if it.ev != nil {
		q.events++
		wake = q.wantEvents <= 0 || q.events >= q.wantEvents
	}
	q.mu.Unlock()
	if wake {
		q.signal()
	}
	return true
}

// wakeAt makes appends wake the appender only once n events are queued (0: at every append),
// and wakes it now if they already are.
func (q *queue) wakeAt(n int) {
	q.mu.Lock()
	q.wantEvents = n
	ready := n > 0 && q.events >= n
	q.mu.Unlock()
	if ready {
		q.signal()
	}
}

func (q *queue) pushOp(op opItem) bool {
	q.mu.Lock()
	if q.closing {
		q.mu.Unlock()
		return false
	}
	q.ops = append(q.ops, op)
	q.mu.Unlock()
	q.signal()
	return true
}

// maxBatchBytes bounds the encoded events of one transaction, so that a run of large
// messages does not make one huge commit.
const maxBatchBytes = 32 << 20

// take removes the next batch: every queued op, and appends up to maxBatch events (or
// maxBatchBytes, but at least one event) together with the barriers among and right after
// them. While hold is set only the barriers at the front are taken (they wait for nothing).
// It also reports whether the store is closing.
func (q *queue) take(maxBatch int, hold bool) (items []appendItem, ops []opItem, closing bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	ops, q.ops = q.ops, nil
	pending := q.appends[q.head:]
	n, events, size := 0, 0, 0
	for ; n < len(pending); n++ {
		if pending[n].ev != nil {
			if hold || events == maxBatch || (events > 0 && size+len(pending[n].rec) > maxBatchBytes) {
				break
			}
			events++
			size += len(pending[n].rec)
		}
	}
	items = slices.Clone(pending[:n])
	clear(pending[:n])
	q.head += n
	q.events -= events
	switch {
	case q.head == len(q.appends):
		q.appends, q.head = q.appends[:0], 0
	case q.head > len(q.appends)/2:
		m := copy(q.appends, q.appends[q.head:])
		clear(q.appends[m:])
		q.appends, q.head = q.appends[:m], 0
	}
	return items, ops, q.closing
}

// takeAll removes everything left in the append lane.
func (q *queue) takeAll() []appendItem {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := slices.Clone(q.appends[q.head:])
	q.appends, q.head, q.events = nil, 0, 0
	return items
}
