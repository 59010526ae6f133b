package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wasmrouter/wasmrouter/event"
)

// Append queues ev for the next group commit. A single appender goroutine takes everything
// queued (up to MaxBatch events) into one bbolt transaction, commits it (one fsync), then calls
// each done in the order Append was called, from the appender goroutine: done must be quick
// and must not wait for the store (another Append's outcome, AddDeadLetter, ResetCursor,
// DeleteCursor, MarkRedriven), which would deadlock. While one commit syncs the next batch
// accumulates, so batches grow with the load without a fixed linger.
//
// On success ev.Seq is set (strictly increasing, never reused) before done runs, and the
// fingerprint index maps fp to it. If the dedup window is not empty and the latest event with
// fingerprint fp lies in it (committed, earlier in the same batch, or queued before), nothing is
// written and done gets the existing seq with dup set; ev.Seq stays unchanged. The caller
// bounds the window to the events whose acknowledgement may have been lost: an identical
// message published again outside it is a new event, not a redelivery. If the commit fails, every event of that batch gets
// the error and none of it is in the log; later appends are tried again. A zero IngestTime is
// set to the current time. After Append, ev belongs to the store: do not modify it.
//
// With OnFull "block", appends are held while the store is full (see Full); done is then
// called only once space has been freed, or with ErrFull at Close.
// Window is a range of seqs, both ends included; the zero Window is empty.
type Window struct{ From, To uint64 }

// Empty reports whether the window holds no seq.
func (w Window) Empty() bool { return w.From == 0 || w.To < w.From }

// Contains reports whether seq lies in the window.
func (w Window) Contains(seq uint64) bool { return !w.Empty() && seq >= w.From && seq <= w.To }

func (s *Store) Append(ev *event.Event, fp Fingerprint, dedup Window, done func(seq uint64, dup bool, err error)) {
	s.AppendEncoded(ev, s.EncodeWith(ev, fp), dedup, done)
}

// Encoded is an event encoded for the log, with its fingerprint: Encode computes both from
// one encoding, where FingerprintOf then Append would encode the event twice.
type Encoded struct {
	rec []byte
	fp  Fingerprint
	err error
}

// Fingerprint is the event's fingerprint, FingerprintOf's.
func (e Encoded) Fingerprint() Fingerprint { return e.fp }

// Encode encodes ev for AppendEncoded and computes its fingerprint from the same bytes. A
// zero IngestTime is set to the current time first.
func (s *Store) Encode(ev *event.Event) Encoded {
	if ev.IngestTime.IsZero() {
		ev.IngestTime = s.opts.Now().UTC()
	}
	if hasBrokerHeaders(ev.Headers) {
		return s.EncodeWith(ev, FingerprintOf(ev))
	}
	rec, at, err := appendRecordAt(make([]byte, 0, recordSizeHint(ev)), ev, Fingerprint{})
	if err != nil {
		return Encoded{fp: FingerprintOf(ev), err: fmt.Errorf("store: encode event: %w", err)}
	}
	fp := fingerprintOfRecord(rec, at)
	copy(rec[at.fp:], fp[:])
	return Encoded{rec: rec, fp: fp}
}

// EncodeWith encodes ev for AppendEncoded with a fingerprint computed before (from the event
// as it was before a change, such as an assigned message id). A zero IngestTime is set to
// the current time first.
func (s *Store) EncodeWith(ev *event.Event, fp Fingerprint) Encoded {
	if ev.IngestTime.IsZero() {
		ev.IngestTime = s.opts.Now().UTC()
	}
	rec, err := appendRecord(make([]byte, 0, recordSizeHint(ev)), ev, fp)
	if err != nil {
		err = fmt.Errorf("store: encode event: %w", err)
	}
	return Encoded{rec: rec, fp: fp, err: err}
}

// AppendEncoded is Append of an event Encode or EncodeWith encoded; ev must not have changed
// since. Encoding in the caller rather than in the appender spreads the work over the callers.
func (s *Store) AppendEncoded(ev *event.Event, enc Encoded, dedup Window, done func(seq uint64, dup bool, err error)) {
	if s.opts.ReadOnly {
		done(0, false, ErrReadOnly)
		return
	}
	if !s.queue.push(appendItem{ev: ev, rec: enc.rec, fp: enc.fp, dedup: dedup, encErr: enc.err, done: done}) {
		done(0, false, ErrClosed)
	}
}

// Barrier calls done, from the appender goroutine (the same rules as for Append's done), once
// every Append queued before it has been committed or has failed; err is the error of the
// commit it waited for, if any. It keeps acknowledgements in delivery order for messages that
// are not appended.
func (s *Store) Barrier(done func(err error)) {
	if s.opts.ReadOnly {
		done(ErrReadOnly)
		return
	}
	if !s.queue.push(appendItem{barrier: done}) {
		done(ErrClosed)
	}
}

// doOp runs apply in the next group commit and returns once it is durable.
func (s *Store) doOp(apply func(tx *bolt.Tx) error) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	done := make(chan error, 1)
	if !s.queue.pushOp(opItem{apply: apply, done: done}) {
		return ErrClosed
	}
	return <-done
}

func (s *Store) runAppender() {
	defer s.wg.Done()
	var flushC <-chan time.Time
	flushDue := false
	for {
		items, ops, closing := s.queue.take(s.opts.MaxBatch, s.full.Load())
		if len(items) > 0 || len(ops) > 0 || (flushDue && s.cursors.dirty()) {
			s.commit(items, ops)
			flushDue = false
			continue
		}
		if closing {
			// One last try for the cursors: a failing disk must not keep Close waiting.
			if s.cursors.dirty() && s.commit(nil, nil) != nil {
				s.log.Error("store: cursor moves not written at close; deliveries since the last commit will repeat")
			}
			s.failHeld()
			return
		}
		// Cursor moves alone are written within cursorFlushDelay; with events flowing they
		// ride along with the next batch.
		if flushC == nil && s.cursors.dirty() {
			flushC = time.After(cursorFlushDelay)
		}
		select {
		case <-s.queue.wake:
		case <-flushC:
			flushC, flushDue = nil, true
		}
	}
}

// CommitError is the error of the last commit while commits fail (disk full, I/O error), nil
// once one succeeds: the router reports itself not ready meanwhile.
func (s *Store) CommitError() error {
	if p := s.commitErr.Load(); p != nil {
		return *p
	}
	return nil
}

// commit writes one batch in one transaction and reports the outcome to every item.
func (s *Store) commit(items []appendItem, ops []opItem) error {
	snap := s.cursors.snapshot()
	opErrs := make([]error, len(ops))
	needTx := len(ops) > 0 || len(snap) > 0
	for i := range items {
		needTx = needTx || (items[i].ev != nil && items[i].encErr == nil)
	}
	var err error
	if needTx {
		err = s.db.Update(func(tx *bolt.Tx) error {
			if s.index == nil && len(items) > 0 {
				// Built at the first append rather than at Open: the tools that open a log
				// to replay or redrive from it never append, and need not wait for it.
				index := newFPIndex(recentIndexSize)
				if err := index.load(tx); err != nil {
					return err
				}
				s.index = index
			}
			if err := writeEvents(tx, items, s.index, s.deletedThrough.Load()); err != nil {
				return err
			}
			for i, op := range ops {
				opErrs[i] = op.apply(tx)
			}
			if err := writeCursors(tx, snap); err != nil {
				return err
			}
			if s.opts.commitHook != nil {
				return s.opts.commitHook()
			}
			return nil
		})
	}
	if err != nil {
		err = fmt.Errorf("store: commit: %w", err)
		if s.commitErr.Swap(&err) == nil {
			s.log.Error("store: commit failed; the batch is not in the log", "items", len(items), "err", err)
		}
		s.cursors.restore(snap)
	} else if needTx {
		if s.commitErr.Swap(nil) != nil {
			s.log.Info("store: commits succeed again")
		}
		s.commits.Add(1)
		if s.m != nil {
			s.m.StoreCommits.Inc()
		}
		s.publish(items)
		s.afterCommit()
	}
	for i := range items {
		it := &items[i]
		switch {
		case it.ev == nil:
			it.barrier(err)
		case it.encErr != nil:
			it.done(0, false, it.encErr)
		case err != nil:
			it.done(0, false, err)
		default:
			it.done(it.seq, it.dup, nil)
		}
	}
	for i, op := range ops {
		if err != nil {
			op.done <- err
		} else {
			op.done <- opErrs[i]
		}
	}
	return err
}

func writeEvents(tx *bolt.Tx, items []appendItem, index *fpIndex, deletedThrough uint64) error {
	evb := tx.Bucket(bucketEvents)
	evb.FillPercent = 1 // keys only ever grow at the end: full pages halve the file
	for i := range items {
		it := &items[i]
		it.seq, it.dup = 0, false
		if it.ev == nil || it.encErr != nil {
			continue
		}
		if !it.dedup.Empty() {
			if seq, ok := index.lookup(it.fp, it.dedup, deletedThrough); ok {
				it.seq, it.dup = seq, true
				continue
			}
			if seq, ok := earlierInBatch(items[:i], it.fp, it.dedup); ok {
				it.seq, it.dup = seq, true
				continue
			}
		}
		seq, err := evb.NextSequence()
		if err != nil {
			return err
		}
		if err := evb.Put(seqKey(seq), it.rec); err != nil {
			return fmt.Errorf("event %d: %w", seq, err)
		}
		it.seq = seq
	}
	return nil
}

// earlierInBatch finds a copy among the batch's events not yet committed (the index learns
// them only once the commit succeeds). Redeliveries are rare, so a scan does.
func earlierInBatch(items []appendItem, fp Fingerprint, w Window) (uint64, bool) {
	for i := len(items) - 1; i >= 0; i-- {
		it := &items[i]
		if it.seq != 0 && !it.dup && it.fp == fp && w.Contains(it.seq) {
			return it.seq, true
		}
	}
	return 0, false
}

// publish makes the committed events of a batch visible: seqs, the ring, and Notify.
func (s *Store) publish(items []appendItem) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	added := false
	for i := range items {
		it := &items[i]
		if it.ev == nil || it.encErr != nil || it.dup {
			continue
		}
		it.ev.Seq = it.seq
		s.index.add(it.fp, it.seq)
		s.ring.put(it.ev)
		s.lastSeq.Store(it.seq)
		added = true
	}
	if added {
		close(s.notify)
		s.notify = make(chan struct{})
	}
}

// afterCommit updates the size gauge and checks the size cap.
func (s *Store) afterCommit() {
	s.Size()
	if s.opts.MaxSize <= 0 {
		return
	}
	used, err := s.usedBytes()
	if err != nil || used < s.opts.MaxSize {
		return
	}
	if s.opts.OnFull == OnFullDropOldest {
		s.kickRetention()
		return
	}
	s.setFull(true, used)
	s.kickRetention() // age retention may free space now rather than at its next tick
}

func (s *Store) setFull(full bool, used int64) {
	if s.full.Swap(full) == full {
		return
	}
	if !full {
		s.log.Info("store: space freed, appending again", "used_bytes", used, "max_size", s.opts.MaxSize)
		s.queue.signal()
		return
	}
	s.fullMu.Lock()
	loud := time.Since(s.fullLoggedAt) > time.Minute
	if loud {
		s.fullLoggedAt = time.Now()
	}
	s.fullMu.Unlock()
	level := s.log.Debug
	if loud {
		level = s.log.Error
	}
	level("store: full; holding new events, so sources are not acknowledged until retention frees space",
		"used_bytes", used, "max_size", s.opts.MaxSize)
}

// failHeld fails the appends still held at Close because the store is full.
func (s *Store) failHeld() {
	for _, it := range s.queue.takeAll() {
		err := fmt.Errorf("%w: closed while holding the event", ErrFull)
		switch {
		case it.ev == nil:
			it.barrier(err)
		case it.encErr != nil:
			it.done(0, false, it.encErr)
		default:
			it.done(0, false, err)
		}
	}
}
