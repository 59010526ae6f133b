package streamlog

import "sync"

// inOrder hands out the completions of appends and barriers in the order they were made,
// across every log a Reopening goes through. Each log completes its own appends in order, but
// a log that is lost fails its appends later than the next log, or the closed state between
// two, may complete newer ones; a source that acknowledges through its last settled delivery
// would then acknowledge a message whose append failed, and a Barrier could come back before
// an earlier append (RATIONALE.md, "Settlements in order across a lost log").
type inOrder struct {
	mu         sync.Mutex
	next       uint64 // the ticket of the next append
	head       uint64 // the ticket whose completion goes out next
	early      map[uint64]completion
	delivering bool // a goroutine is handing out completions; others leave theirs in early
}

type completion struct {
	done func(seq uint64, dup bool, err error)
	seq  uint64
	dup  bool
	err  error
}

func newInOrder() *inOrder { return &inOrder{early: map[uint64]completion{}} }

// ticket numbers an append, before it is handed to a log.
func (o *inOrder) ticket() uint64 {
	o.mu.Lock()
	t := o.next
	o.next++
	o.mu.Unlock()
	return t
}

// complete calls done for ticket t once every earlier ticket's done has been called. The
// goroutine that completes the head calls the dones that waited behind it; in the usual case,
// completions arriving in order, nothing waits and nothing is stored.
func (o *inOrder) complete(t uint64, c completion) {
	o.mu.Lock()
	if t != o.head || o.delivering {
		o.early[t] = c
		o.mu.Unlock()
		return
	}
	o.delivering = true
	for {
		o.head++
		o.mu.Unlock()
		c.done(c.seq, c.dup, c.err)
		o.mu.Lock()
		var ok bool
		if c, ok = o.early[o.head]; !ok {
			break
		}
		delete(o.early, o.head)
	}
	o.delivering = false
	o.mu.Unlock()
}

// wrap numbers an append and returns its done, delivered in order.
func (o *inOrder) wrap(done func(seq uint64, dup bool, err error)) func(seq uint64, dup bool, err error) {
	t := o.ticket()
	return func(seq uint64, dup bool, err error) {
		o.complete(t, completion{done: done, seq: seq, dup: dup, err: err})
	}
}
