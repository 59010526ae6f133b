package store

import (
	"fmt"
	"maps"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/wasmrouter/wasmrouter/event"
)

// maxCursorName keeps cursor names well inside bbolt's key limit.
const maxCursorName = 1024

// cursorState holds every cursor in memory; moves are written in the next transaction. A
// reset or deletion bumps the name's generation, so that a move taken into a batch that then
// fails is not put back over it.
type cursorState struct {
	mu      sync.Mutex
	current map[string]uint64
	pending map[string]pendingCursor
	gen     map[string]uint64
}

type pendingCursor struct {
	seq, gen uint64
}

func (c *cursorState) init(loaded map[string]uint64) {
	c.current = loaded
	c.pending = map[string]pendingCursor{}
	c.gen = map[string]uint64{}
}

func (c *cursorState) dirty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) > 0
}

func (c *cursorState) snapshot() map[string]pendingCursor {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return nil
	}
	snap := c.pending
	c.pending = map[string]pendingCursor{}
	return snap
}

// restore puts back the moves of a batch that failed, unless newer ones or a reset came since.
func (c *cursorState) restore(snap map[string]pendingCursor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, p := range snap {
		if _, newer := c.pending[name]; !newer && c.gen[name] == p.gen {
			c.pending[name] = p
		}
	}
}

func writeCursors(tx *bolt.Tx, snap map[string]pendingCursor) error {
	b := tx.Bucket(bucketCursors)
	for name, p := range snap {
		if err := b.Put([]byte(name), seqKey(p.seq)); err != nil {
			return fmt.Errorf("cursor %q: %w", name, err)
		}
	}
	return nil
}

func checkCursorName(name string) error {
	if name == "" || len(name) > maxCursorName {
		return fmt.Errorf("store: bad cursor name %q", name)
	}
	return nil
}

// Cursor returns the last seq delivered on the named stream, 0 if it has none.
func (s *Store) Cursor(name string) (uint64, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	s.cursors.mu.Lock()
	defer s.cursors.mu.Unlock()
	return s.cursors.current[name], nil
}

// SetCursor moves the named cursor forward to seq; a seq not above the current one is
// ignored. The move is written with the next transaction, within about 100ms when no events
// are being appended, and at Close.
func (s *Store) SetCursor(name string, seq uint64) {
	if s.opts.ReadOnly || checkCursorName(name) != nil {
		s.log.Error("store: cursor not set", "name", name, "read_only", s.opts.ReadOnly)
		return
	}
	c := &s.cursors
	c.mu.Lock()
	if cur, ok := c.current[name]; ok && seq <= cur {
		c.mu.Unlock()
		return
	}
	c.current[name] = seq
	wasClean := len(c.pending) == 0
	c.pending[name] = pendingCursor{seq: seq, gen: c.gen[name]}
	c.mu.Unlock()
	if wasClean {
		s.queue.signal() // so the appender arms its flush timer
	}
}

// ResetCursor sets the named cursor to seq, also backwards; durable on return.
func (s *Store) ResetCursor(name string, seq uint64) error {
	if err := checkCursorName(name); err != nil {
		return err
	}
	return s.replaceCursor(name, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCursors).Put([]byte(name), seqKey(seq))
	}, func(m map[string]uint64) { m[name] = seq })
}

// DeleteCursor removes the named cursor; durable on return.
func (s *Store) DeleteCursor(name string) error {
	return s.replaceCursor(name, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCursors).Delete([]byte(name))
	}, func(m map[string]uint64) { delete(m, name) })
}

// replaceCursor drops pending moves of name, updates memory and queues the write, all under
// the cursor lock, so that writes reach the file in the order they were made.
func (s *Store) replaceCursor(name string, write func(*bolt.Tx) error, update func(map[string]uint64)) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	c := &s.cursors
	done := make(chan error, 1)
	c.mu.Lock()
	c.gen[name]++
	delete(c.pending, name)
	update(c.current)
	queued := s.queue.pushOp(opItem{apply: write, done: done})
	c.mu.Unlock()
	if !queued {
		return ErrClosed
	}
	if err := <-done; err != nil {
		return fmt.Errorf("store: cursor %q: %w", name, err)
	}
	return nil
}

// Cursors returns every cursor by name.
func (s *Store) Cursors() (map[string]uint64, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	s.cursors.mu.Lock()
	defer s.cursors.mu.Unlock()
	return maps.Clone(s.cursors.current), nil
}

// DeliveryCursorPrefix starts the names of the cursors that track delivery positions (log
// seqs). Other cursors (replay jobs, dead-letter IDs) do not hold events back.
const DeliveryCursorPrefix = event.DeliveryCursorPrefix

// MinCursor returns the lowest delivery cursor, 0 if there are none: every event above it is
// still undelivered on some stream.
func (s *Store) MinCursor() uint64 {
	s.cursors.mu.Lock()
	defer s.cursors.mu.Unlock()
	first, low := true, uint64(0)
	for name, seq := range s.cursors.current {
		if !strings.HasPrefix(name, DeliveryCursorPrefix) {
			continue
		}
		if first || seq < low {
			first, low = false, seq
		}
	}
	return low
}
