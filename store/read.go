package store

import (
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/wasmrouter/wasmrouter/event"
)

// scanChunk bounds the records one step of Scan handles: a read transaction stays short (a
// long one would stall the appender when the file must grow) and few decoded events are held.
// scanChunkBytes bounds the bytes of the records one step decodes from the file (at least
// one record): fn sees the decoded events only after the read transaction, so a caller that
// stops early (a stream whose window is full in bytes) would otherwise have had a whole
// chunk of large messages decoded for nothing, 256 MiB of them at 1 MiB each.
const (
	scanChunk      = 256
	scanChunkBytes = 256 << 10
)

// ReleaseRead tells the log that its live readers have all read the events below seq: the
// ring of recent events forgets them, so that it holds only what a reader has yet to take
// (once streams keep up, a commit or two; after a burst, nothing). A reader that asks for them
// again (a stream restarting from its cursor, a replay) reads them from disk.
func (s *Store) ReleaseRead(seq uint64) {
	s.rmu.Lock()
	s.ring.dropBelow(seq, s.lastSeq.Load())
	s.rmu.Unlock()
}

// Get returns the event with seq, or ErrNotFound if it is not (or no longer) in the log.
// The event must not be modified.
func (s *Store) Get(seq uint64) (*event.Event, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	s.rmu.RLock()
	ev := s.ring.get(seq, s.lastSeq.Load(), s.deletedThrough.Load())
	s.rmu.RUnlock()
	if ev != nil {
		return ev, nil
	}
	err := s.view(func(tx *bolt.Tx) error {
		var v []byte
		if b := tx.Bucket(bucketEvents); b != nil {
			v = b.Get(seqKey(seq))
		}
		if v == nil {
			return fmt.Errorf("%w: seq %d", ErrNotFound, seq)
		}
		s.touched(tx, pointReadCost)
		var err error
		if ev, _, err = decodeRecord(v, seq); err != nil {
			return fmt.Errorf("store: seq %d: %w", seq, err)
		}
		return nil
	})
	return ev, err
}

// Scan visits the committed records with seq >= from in seq order, looking at no more than
// limit records (limit <= 0: no limit). For each, keep (nil keeps all) decides from the source
// and routing key alone, without decoding the rest, whether fn gets the event; an event served
// from memory also shows keep the route match the engine gave it at ingest. keep must be
// quick and must not call the store; the events must not be modified.
//
// It returns the seq after the last record looked at, so that a caller resumes past the
// records keep skipped. When fn returns false Scan stops and returns the seq after that
// event's. A record that cannot be decoded stops the scan with an ErrCorrupt error and its
// seq as next: resuming from next+1 skips it.
func (s *Store) Scan(from uint64, limit int, keep event.Keep, fn func(ev *event.Event) bool) (next uint64, err error) {
	return s.ScanBounded(from, limit, 0, keep, fn)
}

// ScanBounded is Scan that also stops once the events handed to fn reach maxBytes of their
// MemSize (at least one event; maxBytes <= 0: no bound), returning the seq after the last
// one, and that decodes no more from the file than that. A caller that stops at a budget in
// bytes (a stream's window) passes it here: with Scan, its fn would drop the rest of a step's
// decoded events, up to scanChunk of them, to be read and decoded again by the next call.
func (s *Store) ScanBounded(from uint64, limit, maxBytes int, keep event.Keep, fn func(ev *event.Event) bool) (next uint64, err error) {
	return s.scanBounded(from, limit, maxBytes, keep, fn, false, nil)
}

// ScanBoundedRawHeaders is ScanBounded for a stream whose messages are encoded from the log's
// bytes (AppendAMQPHeaders): an event read from the file has its header table left in
// LoggedHeaders, checked but not decoded, and Headers nil (DecodeLoggedHeaders decodes it
// where it is needed after all). Events from memory come decoded, as from ScanBounded.
func (s *Store) ScanBoundedRawHeaders(from uint64, limit, maxBytes int, keep event.Keep, fn func(ev *event.Event) bool) (next uint64, err error) {
	return s.scanBounded(from, limit, maxBytes, keep, fn, true, nil)
}

// ScanBoundedRawHeadersIn is ScanBoundedRawHeaders that copies the records it reads from the
// file into chunks given back before (RecycleChunks) where it can, and appends every chunk it
// uses to chunks: a caller that lets go of all the events handed to fn (a stream, once their
// messages are written) gives them back, and the next scan reuses them instead of allocating.
func (s *Store) ScanBoundedRawHeadersIn(chunks *[][]byte, from uint64, limit, maxBytes int, keep event.Keep, fn func(ev *event.Event) bool) (next uint64, err error) {
	return s.scanBounded(from, limit, maxBytes, keep, fn, true, chunks)
}

// DecodeLoggedHeaders decodes the header table of an event ScanBoundedRawHeaders left
// undecoded. Its strings share logged's memory, which is never written to.
func (s *Store) DecodeLoggedHeaders(logged []byte) (event.Table, error) {
	d := decoder{b: logged, owned: true}
	t := d.table(1)
	if d.err == nil && len(d.b) > 0 {
		d.fail("trailing bytes")
	}
	return t, d.err
}

func (s *Store) scanBounded(from uint64, limit, maxBytes int, keep event.Keep, fn func(ev *event.Event) bool, rawHeaders bool, chunks *[][]byte) (next uint64, err error) {
	if err := s.checkOpen(); err != nil {
		return from, err
	}
	next = max(from, 1)
	handed := 0 // MemSize of the events fn took
	for looked := 0; limit <= 0 || looked < limit; {
		// Records up to deletedThrough are gone: jump them without reading.
		next = max(next, s.deletedThrough.Load()+1)
		budget := scanChunk
		if limit > 0 {
			budget = min(budget, limit-looked)
		}
		bound := 0
		if maxBytes > 0 {
			bound = maxBytes - handed // above 0: the scan stops once it is reached
		}
		evs, after, ok := s.scanRing(next, budget)
		if ok {
			evs = filter(evs, keep)
		} else {
			evs, after, err = s.scanDiskIn(next, budget, bound, keep, rawHeaders, chunks)
		}
		for _, ev := range evs {
			if !fn(ev) {
				return ev.Seq + 1, nil
			}
			if maxBytes > 0 {
				if handed += ev.MemSize(); handed >= maxBytes {
					return ev.Seq + 1, nil
				}
			}
		}
		if err != nil || after == next {
			return after, err
		}
		looked += int(after - next)
		next = after
	}
	return next, nil
}

// scanRing returns the events from next on that the ring holds, up to budget of them; ok is
// false when the ring cannot serve next. after is the seq following the last one returned.
func (s *Store) scanRing(next uint64, budget int) (evs []*event.Event, after uint64, ok bool) {
	s.rmu.RLock()
	defer s.rmu.RUnlock()
	last := s.lastSeq.Load()
	if next > last {
		return nil, next, true // nothing committed there yet
	}
	lo := s.ring.low(last, s.deletedThrough.Load())
	if lo == 0 || next < lo {
		return nil, next, false
	}
	end := min(last, next+uint64(budget)-1)
	evs = make([]*event.Event, 0, end-next+1)
	for seq := next; seq <= end; seq++ {
		evs = append(evs, s.ring.get(seq, last, s.deletedThrough.Load()))
	}
	return evs, end + 1, true
}

func filter(evs []*event.Event, keep event.Keep) []*event.Event {
	if keep == nil {
		return evs
	}
	kept := evs[:0]
	for _, ev := range evs {
		if keep(ev.Source, ev.RoutingKey, ev.Routes) {
			kept = append(kept, ev)
		}
	}
	return kept
}

// scanDisk reads up to budget records from next on from the file, decoding only the kept ones
// and stopping after the one that brings their records' bytes to scanChunkBytes, or their
// events' MemSize to memBound (when it is above 0).
func (s *Store) scanDisk(next uint64, budget, memBound int, keep event.Keep) (evs []*event.Event, after uint64, err error) {
	return s.scanDiskIn(next, budget, memBound, keep, false, nil)
}

// scanDiskIn is scanDisk; with rawHeaders (and memBound above 0), header tables are left in
// the events' LoggedHeaders (ScanBoundedRawHeaders); with chunks, copies go to chunks given
// back before, recorded there (ScanBoundedRawHeadersIn).
func (s *Store) scanDiskIn(next uint64, budget, memBound int, keep event.Keep, rawHeaders bool, chunks *[][]byte) (evs []*event.Event, after uint64, err error) {
	after = next
	decoded, mem := 0, 0
	if memBound <= 0 {
		memBound = math.MaxInt
	}
	// A bounded scan is a stream's, which keeps what it is handed together (recordArena).
	var arena *recordArena
	if memBound < math.MaxInt {
		arena = &recordArena{rawHeaders: rawHeaders, chunks: chunks}
	}
	err = s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(next)); k != nil && budget > 0 && decoded < scanChunkBytes && mem < memBound; k, v = c.Next() {
			seq := seqOf(k)
			budget--
			s.touched(tx, len(v))
			if keep != nil {
				src, rk, err := peekRecord(v)
				if err != nil {
					after = seq
					return fmt.Errorf("store: seq %d: %w", seq, err)
				}
				if !keep(string(src), string(rk), event.RouteMatch{}) {
					after = seq + 1
					continue
				}
			}
			if arena != nil {
				arena.want = min(memBound-mem, scanChunkBytes-decoded)
			}
			ev, _, err := decodeRecordIn(v, seq, arena)
			if err != nil {
				after = seq
				return fmt.Errorf("store: seq %d: %w", seq, err)
			}
			evs = append(evs, ev)
			decoded += len(v)
			if memBound < math.MaxInt {
				mem += ev.MemSize()
			}
			after = seq + 1
		}
		return nil
	})
	return evs, after, err
}

// RecordHead is a record's source, routing key and ingest time (see event.RecordHead).
type RecordHead = event.RecordHead

// ScanHeads calls fn with the head of every record with a seq in [from, to], in seq order,
// decoding nothing else: counting a replay's selection this way reads millions of records a
// second. Read transactions last statsChunk records, so that none stays open long. An error
// from fn stops the scan and is returned.
func (s *Store) ScanHeads(from, to uint64, fn func(h RecordHead) error) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	next := max(from, 1)
	for done := false; !done && next <= to; {
		err := s.view(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEvents)
			if b == nil {
				done = true
				return nil
			}
			c := b.Cursor()
			k, v := c.Seek(seqKey(next))
			for range statsChunk {
				if k == nil || seqOf(k) > to {
					done = true
					return nil
				}
				seq := seqOf(k)
				s.touched(tx, len(v))
				src, key, err := peekRecord(v)
				if err != nil {
					return fmt.Errorf("store: seq %d: %w", seq, err)
				}
				if err := fn(RecordHead{Seq: seq, Source: src, RoutingKey: key, IngestTime: ingestTimeOf(v)}); err != nil {
					return err
				}
				next = seq + 1
				k, v = c.Next()
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
