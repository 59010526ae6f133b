package store

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wasmrouter/wasmrouter/event"
)

// Window is where an append looks for a duplicate (see event.Window).
type Window = event.Window

// Append logs ev (see router.Log): with the zero fp, the fingerprint comes from the record's
// own encoding (Encode); otherwise it is fp (EncodeWith).
func (s *Store) Append(ev *event.Event, fp Fingerprint, dedup Window, done func(seq uint64, dup bool, err error)) {
	enc := s.EncodeWith
	if fp == (Fingerprint{}) {
		enc = func(ev *event.Event, _ Fingerprint) Encoded { return s.Encode(ev) }
	}
	s.AppendEncoded(ev, enc(ev, fp), dedup, done)
}

// Encoded is an event encoded for the log, with its fingerprint: Encode computes both from
// one encoding, where FingerprintOf then Append would encode the event twice.
type Encoded struct {
	rec []byte
	buf *[]byte // rec's buffer, from recordBufs: given back once the commit has copied it
	fp  Fingerprint
	err error
}

// recordBufs keeps the buffers events are encoded into. bbolt copies a record into its page
// when the transaction commits, so the buffer is free again after the commit: reusing it
// spares an allocation of the whole event (a tenth of the bytes the router allocated per
// event) and the garbage collection that comes with it.
var recordBufs sync.Pool

// maxPooledRecord bounds the buffers kept: an unusually large event's is left to the
// collector.
const maxPooledRecord = 64 << 10

func recordBuf(size int) *[]byte {
	p, _ := recordBufs.Get().(*[]byte)
	if p == nil {
		p = new([]byte)
	}
	if cap(*p) < size {
		*p = make([]byte, 0, size)
	}
	return p
}

// releaseRecords gives the committed (or failed) items' buffers back.
func releaseRecords(items []appendItem) {
	for i := range items {
		if p := items[i].buf; p != nil {
			items[i].buf, items[i].rec = nil, nil
			if cap(*p) <= maxPooledRecord {
				*p = (*p)[:0]
				recordBufs.Put(p)
			}
		}
	}
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
	buf := recordBuf(recordSizeHint(ev))
	rec, at, err := appendRecordAt(*buf, ev, Fingerprint{})
	if err != nil {
		return Encoded{fp: FingerprintOf(ev), err: fmt.Errorf("store: encode event: %w", err)}
	}
	*buf = rec
	fp := fingerprintOfRecord(rec, at)
	copy(rec[at.fp:], fp[:])
	return Encoded{rec: rec, buf: buf, fp: fp}
}

// EncodeWith encodes ev for AppendEncoded with a fingerprint computed before (from the event
// as it was before a change, such as an assigned message id). A zero IngestTime is set to
// the current time first.
func (s *Store) EncodeWith(ev *event.Event, fp Fingerprint) Encoded {
	if ev.IngestTime.IsZero() {
		ev.IngestTime = s.opts.Now().UTC()
	}
	buf := recordBuf(recordSizeHint(ev))
	rec, err := appendRecord(*buf, ev, fp)
	if err != nil {
		return Encoded{fp: fp, err: fmt.Errorf("store: encode event: %w", err)}
	}
	*buf = rec
	return Encoded{rec: rec, buf: buf, fp: fp}
}

// AppendEncoded is Append of an event Encode or EncodeWith encoded; ev must not have changed
// since. Encoding in the caller rather than in the appender spreads the work over the callers.
func (s *Store) AppendEncoded(ev *event.Event, enc Encoded, dedup Window, done func(seq uint64, dup bool, err error)) {
	if s.opts.ReadOnly {
		done(0, false, ErrReadOnly)
		return
	}
	if !s.queue.push(appendItem{ev: ev, rec: enc.rec, buf: enc.buf, fp: enc.fp, dedup: dedup, encErr: enc.err, done: done}) {
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
		if n := countEvents(items); n > 0 && n < s.opts.batchMin && !closing {
			items, ops = s.gather(items, ops)
		}
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

// gather lets a small batch wait up to batchWait for more events before it is committed.
// Every commit pays an fsync, whose CPU time (about 50 us on the benchmark machine) was more
// than a handful of events cost otherwise: committing as soon as the last commit ended made
// batches of 3-10 events at a few thousand events per second, and the fsyncs a large share of
// the router's CPU. Sources do not wait for acknowledgements meanwhile (their prefetch window
// is far larger than a batch), so only latency grows, by at most batchWait. Without fsync
// (NoSync) there is nothing to spread, and no wait.
//
// It waits only while the machine is busy (less than a tenth of its CPU time idle over the
// last tenth of a second): then the commits it saves give CPU to the broker and the router;
// with CPU to spare they save nothing anyone needs, and the wait would add its whole length
// to every event's latency (in BenchmarkAppendPaced at 2,000 events/s, no wait halved p50
// for 3% more CPU per event; BENCHMARKS.md, "The linger only on a busy machine, the log's
// file written ahead").
//
// When nothing else can come (every writer waits for this commit: a source with a small
// prefetch, or a tool appending one event at a time), waiting only slows it down: a wait that
// gained no event turns the waits off for the next gatherSkip small batches.
func (s *Store) gather(items []appendItem, ops []opItem) ([]appendItem, []opItem) {
	if s.opts.batchWait <= 0 || s.opts.NoSync {
		return items, ops
	}
	if !s.opts.machineBusy() {
		return items, ops
	}
	if s.gatherSkip > 0 {
		s.gatherSkip--
		return items, ops
	}
	before := countEvents(items)
	if s.m != nil {
		defer func(start time.Time) { s.m.CommitWait.Add(time.Since(start).Seconds()) }(time.Now())
	}
	timer := time.NewTimer(s.opts.batchWait)
	defer timer.Stop()
	defer s.queue.wakeAt(0)
	for n := before; n < s.opts.batchMin; n = countEvents(items) {
		if s.full.Load() {
			return items, ops // the queued events are held: nothing more can join
		}
		s.queue.wakeAt(s.opts.batchMin - n)
		expired := false
		select {
		case <-s.queue.wake:
		case <-timer.C:
			expired = true
		}
		more, moreOps, closing := s.queue.take(s.opts.MaxBatch-n, s.full.Load())
		items, ops = append(items, more...), append(ops, moreOps...)
		if closing {
			s.queue.signal() // the loop sees closing at its next take
			return items, ops
		}
		if expired {
			// What came during the wait (too few to wake the appender) joins this commit.
			if countEvents(items) == before {
				s.gatherSkip = gatherSkip
			}
			return items, ops
		}
	}
	return items, ops
}

// gatherSkip is how many small batches are committed at once after a wait that gained nothing.
const gatherSkip = 16

func countEvents(items []appendItem) int {
	n := 0
	for i := range items {
		if items[i].ev != nil {
			n++
		}
	}
	return n
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
	written := 0 // bytes of records committed
	if needTx {
		start := time.Now()
		err = s.db.Update(func(tx *bolt.Tx) error {
			s.extendTail(tx)
			if s.index == nil && len(items) > 0 {
				// Built at the first append rather than at Open: the tools that open a log
				// to replay or redrive from it never append, and need not wait for it.
				index := newFPIndex(s.opts.RecentIndex)
				if err := index.load(tx, func(n int) { s.touched(tx, n) }); err != nil {
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
		if s.m != nil {
			s.m.CommitDuration.Observe(time.Since(start).Seconds())
		}
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
			s.m.Commits.Inc()
		}
		s.publish(items)
		s.afterCommit()
		for i := range items {
			if items[i].seq != 0 && !items[i].dup {
				written += len(items[i].rec)
			}
		}
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
	releaseRecords(items)
	s.wrote(written)
	return err
}

func writeEvents(tx *bolt.Tx, items []appendItem, index *fpIndex, deletedThrough uint64) error {
	evb := tx.Bucket(bucketEvents)
	evb.FillPercent = 1 // keys only ever grow at the end: full pages halve the file
	// One key buffer for the batch: bbolt copies the key in Put (only the value must stay
	// valid until the commit), so a fresh one per event was an allocation for nothing.
	key := make([]byte, 8)
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
		binary.BigEndian.PutUint64(key, seq)
		if err := evb.Put(key, it.rec); err != nil {
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

// afterCommit updates the size gauge (at most every sizeEvery: a stat of the file per commit
// was 2.5% of the router's CPU in a profile of the router-go side, busy machine) and checks
// the size cap, which counts the data, not the file.
func (s *Store) afterCommit() {
	if now := time.Now(); now.Sub(s.sizeAt) >= sizeEvery {
		s.sizeAt = now
		s.Size()
	}
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
